//! An SDK interceptor that counts the requests sent, per operation, so tests (and logs) can
//! state how many round trips a request cost, and what DynamoDB charged for them: it asks every
//! DynamoDB request for its consumed capacity (`ReturnConsumedCapacity: TOTAL`, free of charge)
//! and adds up the read and write units the answers report.

use aws_sdk_dynamodb::operation::{
    batch_get_item::{BatchGetItemInput, BatchGetItemOutput},
    batch_write_item::{BatchWriteItemInput, BatchWriteItemOutput},
    delete_item::{DeleteItemInput, DeleteItemOutput},
    get_item::{GetItemInput, GetItemOutput},
    put_item::{PutItemInput, PutItemOutput},
    query::{QueryInput, QueryOutput},
    transact_write_items::{TransactWriteItemsInput, TransactWriteItemsOutput},
    update_item::{UpdateItemInput, UpdateItemOutput},
};
use aws_sdk_dynamodb::types::{ConsumedCapacity, ReturnConsumedCapacity};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextMut,
    BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use std::sync::{Arc, Mutex};

/// Counts every request put on the wire (retries included), with its operation name, and the
/// capacity units DynamoDB reports it consumed.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<Mutex<Counted>>);

#[derive(Debug, Default)]
struct Counted {
    operations: Vec<String>,
    capacity: Capacity,
}

/// Capacity units DynamoDB reported as consumed (on-demand: read and write request units).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Capacity {
    pub read: f64,
    pub write: f64,
}

impl RequestCounter {
    /// The operations sent since the last call, and resets (the capacity too).
    pub fn take(&self) -> Vec<String> {
        self.take_with_capacity().0
    }

    /// The operations sent and the capacity they consumed since the last call, and resets.
    pub fn take_with_capacity(&self) -> (Vec<String>, Capacity) {
        self.0
            .lock()
            .map(|mut c| {
                let c = std::mem::take(&mut *c);
                (c.operations, c.capacity)
            })
            .unwrap_or_default()
    }
}

/// Asks a DynamoDB request for its consumed capacity; other inputs are left as they are.
fn ask_for_capacity(input: &mut aws_smithy_runtime_api::client::interceptors::context::Input) {
    let total = Some(ReturnConsumedCapacity::Total);
    macro_rules! set {
        ($($t:ty),*) => {
            $(if let Some(i) = input.downcast_mut::<$t>() {
                i.return_consumed_capacity = total;
                return;
            })*
        };
    }
    set!(
        GetItemInput,
        BatchGetItemInput,
        PutItemInput,
        UpdateItemInput,
        DeleteItemInput,
        QueryInput,
        TransactWriteItemsInput,
        BatchWriteItemInput
    );
}

/// The capacity a DynamoDB answer reports: (read units, write units).
fn reported(output: &aws_smithy_runtime_api::client::interceptors::context::Output) -> Capacity {
    let units = |c: &[ConsumedCapacity]| c.iter().filter_map(ConsumedCapacity::capacity_units).sum::<f64>();
    let one = |c: Option<&ConsumedCapacity>| c.and_then(ConsumedCapacity::capacity_units).unwrap_or(0.0);
    let read = |u| Capacity { read: u, write: 0.0 };
    let write = |u| Capacity { read: 0.0, write: u };
    if let Some(o) = output.downcast_ref::<GetItemOutput>() {
        read(one(o.consumed_capacity()))
    } else if let Some(o) = output.downcast_ref::<BatchGetItemOutput>() {
        read(units(o.consumed_capacity()))
    } else if let Some(o) = output.downcast_ref::<QueryOutput>() {
        read(one(o.consumed_capacity()))
    } else if let Some(o) = output.downcast_ref::<PutItemOutput>() {
        write(one(o.consumed_capacity()))
    } else if let Some(o) = output.downcast_ref::<UpdateItemOutput>() {
        write(one(o.consumed_capacity()))
    } else if let Some(o) = output.downcast_ref::<DeleteItemOutput>() {
        write(one(o.consumed_capacity()))
    } else if let Some(o) = output.downcast_ref::<TransactWriteItemsOutput>() {
        write(units(o.consumed_capacity()))
    } else if let Some(o) = output.downcast_ref::<BatchWriteItemOutput>() {
        write(units(o.consumed_capacity()))
    } else {
        Capacity::default()
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let name = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .map(|m| m.name().to_string())
            .unwrap_or_else(|| "?".into());
        if let Ok(mut c) = self.0.lock() {
            c.operations.push(name);
        }
        Ok(())
    }

    fn modify_before_serialization(
        &self,
        ctx: &mut BeforeSerializationInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        ask_for_capacity(ctx.input_mut());
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        ctx: &AfterDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Ok(output) = ctx.output_or_error() {
            let used = reported(output);
            if let Ok(mut c) = self.0.lock() {
                c.capacity.read += used.read;
                c.capacity.write += used.write;
            }
        }
        Ok(())
    }
}
