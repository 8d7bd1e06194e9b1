//! What the use cases share: the optimistic-update retry, and audit events written on their own
//! whose failure is logged rather than lost.

use crate::audit::AuditEvent;
use crate::error::Error;
use crate::ports::AuditStore;
use std::future::Future;

/// What one attempt of an optimistic update came to.
#[derive(Debug)]
pub enum Attempt<S, T> {
    /// Finished: written, or nothing to write, or refused.
    Done(T),
    /// Another writer got there first (a version condition failed): try again from `S`, the
    /// state the next attempt starts from (typically `None`: read the record afresh).
    Retry(S),
}

/// Runs a read-change-write at most `attempts` times: `attempt` gets the state to start from
/// (`first`, then what the previous attempt's [`Attempt::Retry`] carried) and either finishes
/// or asks to retry. `Ok(None)` when every attempt met a concurrent change; an error ends the
/// loop at once.
pub async fn retry_on_conflict<S, T, E, F, Fut>(attempts: usize, first: S, mut attempt: F) -> Result<Option<T>, E>
where
    F: FnMut(S) -> Fut,
    Fut: Future<Output = Result<Attempt<S, T>, E>>,
{
    let mut state = first;
    for _ in 0..attempts {
        match attempt(state).await? {
            Attempt::Done(t) => return Ok(Some(t)),
            Attempt::Retry(next) => state = next,
        }
    }
    Ok(None)
}

/// What an optimistic update answers when every attempt met a concurrent change of `what`
/// (`"tenant"`, `"user"`): the caller may retry at once.
pub fn changed_concurrently(what: &str) -> Error {
    Error::Unavailable { message: format!("the {what} changed concurrently; retry"), retry_after_secs: 1 }
}

/// Records an audit event written on its own (not in the transaction of a change): a failure is
/// logged with what was lost (the request id is on the request's span), and does not undo what
/// was done. Returns whether it was recorded.
pub async fn record_or_log(store: &dyn AuditStore, event: &AuditEvent) -> bool {
    match store.record_audit(event).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(
                action = event.action.as_str(),
                tenant = %event.tenant,
                actor = %event.actor,
                target = event.target.as_deref().unwrap_or("-"),
                error = %e,
                "audit event not recorded"
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_until_done_or_out_of_attempts() {
        let run = |conflicts: usize| {
            let mut calls = 0;
            let out = block_on(retry_on_conflict(4, 0usize, |n| {
                calls += 1;
                async move {
                    if n < conflicts {
                        Ok::<_, ()>(Attempt::Retry(n + 1))
                    } else {
                        Ok(Attempt::Done(n))
                    }
                }
            }));
            (out, calls)
        };
        assert_eq!(run(0), (Ok(Some(0)), 1));
        assert_eq!(run(3), (Ok(Some(3)), 4));
        assert_eq!(run(4), (Ok(None), 4));
        let failed: Result<Option<()>, &str> = block_on(retry_on_conflict(4, (), |_| async { Err("store down") }));
        assert_eq!(failed, Err("store down"));
    }

    /// Polls a future that never waits (the attempts above are ready at once).
    fn block_on<F: Future>(f: F) -> F::Output {
        use std::task::{Context, Poll, Waker};
        let mut f = std::pin::pin!(f);
        let mut cx = Context::from_waker(Waker::noop());
        match f.as_mut().poll(&mut cx) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("the test's attempts never wait"),
        }
    }
}
