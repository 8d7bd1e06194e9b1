//! Which account a verified identity signs in to, by strict rules (see
//! [`SignInService::map_user`]), and the just-in-time users it may create.

use super::{SignInService, ATTEMPTS};
use crate::email::{fold, link_key, UserName};
use crate::ids::UserId;
use crate::sso::{SsoError, Subject, VerifiedIdToken};
use crate::tenant::{SignInPolicy, Tenant};
use crate::usecase::{changed_concurrently, retry_on_conflict, Attempt};
use crate::user::{Email, Name, RoleSource, User};
use crate::Error;

impl SignInService {
    /// The account for a verified identity, by these rules only (OIDC Core §5.7: `iss`+`sub`
    /// is the only stable identifier):
    /// 1. the user already linked to (`iss`, `sub`);
    /// 2. else the user whose SCIM `externalId` equals `sub` (Okta's provisioning and its
    ///    sign-in are the same tenant-controlled source), linked now;
    /// 3. else the user whose `userName` is the token's email, only if the provider says the
    ///    email is verified, the email's domain is verified for this tenant, and both addresses
    ///    have the same strict form ([`link_key`]: no case folding, no compatibility mapping);
    /// 4. else, for a verified email in one of the tenant's verified domains, a new user with
    ///    `read_only` (just in time).
    ///
    /// `preferred_username` is never used. A user already linked to another identity of the
    /// same issuer is never re-linked. Anything else is a refusal: nothing is linked or created.
    pub(super) async fn map_user(&self, tenant: &Tenant, token: &VerifiedIdToken) -> Result<(User, bool), SsoError> {
        let subject = Subject { issuer: token.issuer.clone(), sub: token.subject.clone() };
        let subject = &subject;
        let linked = retry_on_conflict(ATTEMPTS, (), |()| async move {
            if let Some(u) = self.store.find_user_by_subject(&tenant.id, subject).await? {
                return if u.active { Ok(Attempt::Done((u, false))) } else { Err(SsoError::Deactivated) };
            }
            let by_external_id = self.store.find_user_by_external_id(&tenant.id, &subject.sub).await?;
            let (candidate, how) = match by_external_id {
                Some(u) => (Some(u), "externalId"),
                None => match token.email.as_deref() {
                    Some(email) => (self.store.find_user_by_user_name(&tenant.id, &fold(email.trim())).await?, "email"),
                    None => (None, "email"),
                },
            };
            let now = self.clock.now();
            match candidate {
                Some(u) => {
                    if how == "email" {
                        self.check_email_link(tenant, token, &u)?;
                    }
                    if !u.active {
                        return Err(SsoError::Deactivated);
                    }
                    if u.subject.as_ref().is_some_and(|s| s.issuer == subject.issuer && s != subject) {
                        return Err(SsoError::LinkRefused(
                            "this account is linked to another identity at your identity provider; ask your administrator"
                                .into(),
                        ));
                    }
                    let mut next = u.clone();
                    next.subject = Some(subject.clone());
                    next.version += 1;
                    next.last_modified = now;
                    match self.store.replace_user(&u, &next).await {
                        Ok(()) => Ok(Attempt::Done((next, false))),
                        Err(Error::PreconditionFailed(_) | Error::Taken(_) | Error::NotFound(_)) => {
                            Ok(Attempt::Retry(()))
                        }
                        Err(e) => Err(e.into()),
                    }
                }
                None => {
                    if !SignInPolicy::of(tenant, &self.policy).jit {
                        return Err(SsoError::LinkRefused(
                            "your organisation gives Butterfly accounts through provisioning only: ask your \
                             administrator for access"
                                .into(),
                        ));
                    }
                    let (email, user_name) = self.jit_email(tenant, token)?;
                    let name = Name {
                        formatted: token.name.clone(),
                        family_name: token.family_name.clone(),
                        given_name: token.given_name.clone(),
                        middle_name: None,
                    };
                    let user = User {
                        id: UserId::generate(),
                        tenant: tenant.id.clone(),
                        user_name,
                        external_id: None,
                        name: (!name.is_empty()).then_some(name),
                        display_name: token.name.clone(),
                        emails: vec![Email {
                            value: email,
                            kind: Some("work".into()),
                            primary: Some(true),
                            display: None,
                        }],
                        active: true,
                        locale: None,
                        role: None,
                        role_source: Some(RoleSource::Jit),
                        subject: Some(subject.clone()),
                        sessions_revoked_at: None,
                        created: now,
                        last_modified: now,
                        version: 1,
                    };
                    match self.store.create_user(&user).await {
                        Ok(()) => Ok(Attempt::Done((user, true))),
                        // Created concurrently (another tab, or Okta's SCIM push): look again.
                        Err(Error::Taken(_)) => Ok(Attempt::Retry(())),
                        Err(e) => Err(e.into()),
                    }
                }
            }
        })
        .await?;
        linked.ok_or_else(|| SsoError::Store(changed_concurrently("user")))
    }

    /// Rule 3 of [`Self::map_user`]: may this identity's email link it to `user`?
    fn check_email_link(&self, tenant: &Tenant, token: &VerifiedIdToken, user: &User) -> Result<(), SsoError> {
        let email = token.email.as_deref().unwrap_or("");
        if token.email_verified != Some(true) {
            return Err(SsoError::LinkRefused(
                "your identity provider does not say your email address is verified, so it cannot be linked to \
                 your Butterfly account; ask your administrator"
                    .into(),
            ));
        }
        let same = match (link_key(email), link_key(user.user_name.as_str())) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        };
        if !same {
            return Err(SsoError::LinkRefused(
                "your email address only resembles the one of a Butterfly account, so they were not linked; ask your \
                 administrator"
                    .into(),
            ));
        }
        if !Self::email_domain(email).is_some_and(|d| tenant.has_verified_domain(&d)) {
            return Err(SsoError::LinkRefused(
                "your email address is not in one of your organisation's verified domains, so it cannot be linked to \
                 a Butterfly account; ask your administrator"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Rule 4 of [`Self::map_user`]: the email a just-in-time user is created with.
    fn jit_email(&self, tenant: &Tenant, token: &VerifiedIdToken) -> Result<(String, UserName), SsoError> {
        let email = token.email.as_deref().map(str::trim).filter(|e| !e.is_empty()).ok_or_else(|| {
            SsoError::rejected("no_email", "the identity provider sent no email address for this user")
        })?;
        let user_name = UserName::parse(email).map_err(|_| {
            SsoError::rejected("no_email", "the identity provider sent an email address Butterfly cannot use")
        })?;
        if token.email_verified != Some(true) {
            return Err(SsoError::LinkRefused(
                "your identity provider does not say your email address is verified, so no Butterfly account was \
                 created; ask your administrator"
                    .into(),
            ));
        }
        if !Self::email_domain(email).is_some_and(|d| tenant.has_verified_domain(&d)) {
            return Err(SsoError::LinkRefused(
                "your email address is not in one of your organisation's verified domains, so no Butterfly account \
                 was created; ask your administrator"
                    .into(),
            ));
        }
        Ok((email.to_string(), user_name))
    }
}
