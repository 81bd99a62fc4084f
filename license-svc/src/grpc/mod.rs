//! The `reactivation.license.v1.LicenseService` gRPC surface: authenticates
//! callers, converts requests into domain calls once at the edge, and
//! converts results back.

use std::collections::BTreeMap;

use platform::{auth::Authenticator, wire};
use proto::license::v1 as pb;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    domain::{Access, Customer, DisabledReason, Email, KeyStatus, KeyType, License},
    error::Error,
    licenses::{CustomerRef, Entry, Filter, Licenses, NewKey, Validity},
};

/// `performed_by` of an action taken by another service of the mesh.
pub const SERVICE_ACTOR: &str = "service";

#[derive(Clone, Debug)]
pub struct LicenseService {
    pub(crate) licenses: Licenses,
    pub(crate) authenticator: Authenticator,
}

impl LicenseService {
    /// The admin making the call, as their history entries name them.
    async fn admin<T>(&self, request: &Request<T>) -> Result<String, Status> {
        Ok(self.admin_id(request).await?.to_string())
    }

    /// The admin making the call. Only a user's token with the admin role
    /// passes: another service's internal token does not, so every caller
    /// here is a person whose reads are recorded.
    async fn admin_id<T>(&self, request: &Request<T>) -> Result<Uuid, Status> {
        let caller = self.authenticator.authenticate(request.metadata()).await?;
        caller.require_admin().map_err(Error::from)?;
        Ok(caller.user_id)
    }
}

fn key_type_from_wire(raw: i32, field: &'static str) -> Result<Option<KeyType>, Error> {
    match pb::KeyType::try_from(raw) {
        Ok(pb::KeyType::Unspecified) => Ok(None),
        Ok(pb::KeyType::Trial) => Ok(Some(KeyType::Trial)),
        Ok(pb::KeyType::Production) => Ok(Some(KeyType::Production)),
        Ok(pb::KeyType::Development) => Ok(Some(KeyType::Development)),
        Err(_) => Err(Error::invalid(field, "unknown key type")),
    }
}

fn key_type_to_wire(key_type: KeyType) -> pb::KeyType {
    match key_type {
        KeyType::Trial => pb::KeyType::Trial,
        KeyType::Production => pb::KeyType::Production,
        KeyType::Development => pb::KeyType::Development,
    }
}

fn status_to_wire(status: KeyStatus) -> pb::KeyStatus {
    match status {
        KeyStatus::Active => pb::KeyStatus::Active,
        KeyStatus::Disabled => pb::KeyStatus::Disabled,
        KeyStatus::Expired => pb::KeyStatus::Expired,
    }
}

fn disabled_reason_to_wire(reason: DisabledReason) -> pb::DisabledReason {
    match reason {
        DisabledReason::Admin => pb::DisabledReason::Admin,
        DisabledReason::Payment => pb::DisabledReason::Payment,
        DisabledReason::AccountClosed => pb::DisabledReason::AccountClosed,
    }
}

fn customer_from_wire(customer: pb::CustomerInfo) -> Customer {
    Customer {
        name: customer.name.trim().to_owned(),
        company: customer.company.trim().to_owned(),
        notes: customer.notes,
    }
}

fn optional_user_id(raw: &str, field: &'static str) -> Result<Option<Uuid>, Error> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    Uuid::parse_str(raw.trim())
        .map(Some)
        .map_err(|_| Error::invalid(field, format!("{field} must be a UUID")))
}

fn features(flags: std::collections::HashMap<String, bool>) -> BTreeMap<String, bool> {
    flags.into_iter().collect()
}

/// `license` as the wire shows it, with its status at `now`.
fn to_wire(license: License, now: chrono::DateTime<chrono::Utc>) -> pb::LicenseKey {
    pb::LicenseKey {
        status: status_to_wire(license.status(now)).into(),
        is_trial: license.is_trial(),
        key_type: key_type_to_wire(license.key_type).into(),
        key: license.key.to_string(),
        email: license.email.to_string(),
        owner_user_id: license.owner_user_id.map(|id| id.to_string()).unwrap_or_default(),
        expires_at: wire::optional_timestamp(license.expires_at),
        disabled_at: wire::optional_timestamp(license.disabled_at),
        disabled_reason: license
            .disabled_reason
            .map_or(pb::DisabledReason::Unspecified, disabled_reason_to_wire)
            .into(),
        created_at: Some(wire::timestamp(license.created_at)),
        features: license.features.into_iter().collect(),
        customer: Some(pb::CustomerInfo {
            name: license.customer.name,
            company: license.customer.company,
            notes: license.customer.notes,
        }),
    }
}

impl From<Entry> for pb::KeyHistoryEntry {
    fn from(entry: Entry) -> Self {
        Self {
            key: entry.key,
            action: entry.action,
            performed_at: Some(wire::timestamp(entry.performed_at)),
            performed_by: entry.performed_by,
            details_json: entry.details.to_string(),
            trace_id: entry.trace_id.unwrap_or_default(),
        }
    }
}

impl From<Validity> for pb::ValidateKeyResponse {
    fn from(validity: Validity) -> Self {
        Self {
            valid: validity.status == KeyStatus::Active,
            status: status_to_wire(validity.status).into(),
            key_type: key_type_to_wire(validity.key_type).into(),
            expires_at: wire::optional_timestamp(validity.expires_at),
            features: validity.features.into_iter().collect(),
        }
    }
}

impl LicenseService {
    fn answer(&self, license: License) -> Response<pb::LicenseKey> {
        Response::new(to_wire(license, self.licenses.now()))
    }
}

#[tonic::async_trait]
impl pb::license_service_server::LicenseService for LicenseService {
    #[tracing::instrument(skip_all)]
    async fn create_key(&self, request: Request<pb::CreateKeyRequest>) -> Result<Response<pb::LicenseKey>, Status> {
        let admin = self.admin(&request).await?;
        let pb::CreateKeyRequest {
            email,
            owner_user_id,
            key_type,
            trial_days,
            features: flags,
            customer,
        } = request.into_inner();
        let new = NewKey {
            email,
            owner_user_id: optional_user_id(&owner_user_id, "owner_user_id")?,
            key_type: key_type_from_wire(key_type, "key_type")?
                .ok_or_else(|| Error::invalid("key_type", "key_type is required"))?,
            trial_days: (trial_days > 0).then_some(trial_days),
            features: features(flags),
            customer: customer.map(customer_from_wire).unwrap_or_default(),
        };
        let license = self.licenses.create(new, &admin).await?;
        Ok(self.answer(license))
    }

    #[tracing::instrument(skip_all)]
    async fn get_key(&self, request: Request<pb::GetKeyRequest>) -> Result<Response<pb::LicenseKey>, Status> {
        let admin = self.admin_id(&request).await?;
        let license = self.licenses.get(&request.get_ref().key, admin).await?;
        Ok(self.answer(license))
    }

    #[tracing::instrument(skip_all)]
    async fn list_my_keys(
        &self,
        request: Request<pb::ListMyKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        let caller = self.authenticator.authenticate(request.metadata()).await?;
        let keys = self.licenses.keys_of_owner(caller.user_id).await?;
        let now = self.licenses.now();
        let keys = keys
            .into_iter()
            .map(|license| pb::LicenseKey {
                // Support's notes are theirs.
                customer: None,
                ..to_wire(license, now)
            })
            .collect();
        Ok(Response::new(pb::ListKeysResponse {
            keys,
            next_page_token: String::new(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_keys(&self, request: Request<pb::ListKeysRequest>) -> Result<Response<pb::ListKeysResponse>, Status> {
        self.admin(&request).await?;
        let pb::ListKeysRequest {
            email,
            status,
            key_type,
            page_size,
            page_token,
        } = request.into_inner();
        let email = if email.trim().is_empty() {
            None
        } else {
            Some(Email::parse(&email).map_err(|message| Error::invalid("email", message))?)
        };
        let status = match pb::KeyStatus::try_from(status) {
            Ok(pb::KeyStatus::Unspecified) => None,
            Ok(pb::KeyStatus::Active) => Some(KeyStatus::Active),
            Ok(pb::KeyStatus::Disabled) => Some(KeyStatus::Disabled),
            Ok(pb::KeyStatus::Expired) => Some(KeyStatus::Expired),
            Err(_) => return Err(Error::invalid("status", "unknown status").into()),
        };
        let filter = Filter {
            email,
            status,
            key_type: key_type_from_wire(key_type, "key_type")?,
        };
        let page_token = Some(page_token.as_str()).filter(|token| !token.is_empty());
        let page = self
            .licenses
            .list(filter, (page_size > 0).then_some(page_size), page_token)
            .await?;
        let now = self.licenses.now();
        Ok(Response::new(pb::ListKeysResponse {
            keys: page.keys.into_iter().map(|license| to_wire(license, now)).collect(),
            next_page_token: page.next.unwrap_or_default(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_key(&self, request: Request<pb::UpdateKeyRequest>) -> Result<Response<pb::LicenseKey>, Status> {
        let admin = self.admin(&request).await?;
        let pb::UpdateKeyRequest {
            key,
            customer,
            features: flags,
        } = request.into_inner();
        let license = self
            .licenses
            .update(
                &key,
                customer.map(customer_from_wire),
                flags.map(|flags| features(flags.flags)),
                &admin,
            )
            .await?;
        Ok(self.answer(license))
    }

    #[tracing::instrument(skip_all)]
    async fn extend_key(&self, request: Request<pb::ExtendKeyRequest>) -> Result<Response<pb::LicenseKey>, Status> {
        let admin = self.admin(&request).await?;
        let pb::ExtendKeyRequest { key, days } = request.into_inner();
        let license = self.licenses.extend(&key, days, &admin).await?;
        Ok(self.answer(license))
    }

    #[tracing::instrument(skip_all)]
    async fn close_deal(&self, request: Request<pb::CloseDealRequest>) -> Result<Response<pb::LicenseKey>, Status> {
        let admin = self.admin(&request).await?;
        let license = self.licenses.close_deal(&request.get_ref().key, &admin).await?;
        Ok(self.answer(license))
    }

    #[tracing::instrument(skip_all)]
    async fn email_key(&self, request: Request<pb::EmailKeyRequest>) -> Result<Response<pb::EmailKeyResponse>, Status> {
        let admin = self.admin(&request).await?;
        self.licenses.email(&request.get_ref().key, &admin).await?;
        Ok(Response::new(pb::EmailKeyResponse {}))
    }

    #[tracing::instrument(skip_all)]
    async fn disable_key(&self, request: Request<pb::DisableKeyRequest>) -> Result<Response<pb::LicenseKey>, Status> {
        let admin = self.admin(&request).await?;
        let license = self.licenses.disable(&request.get_ref().key, &admin).await?;
        Ok(self.answer(license))
    }

    #[tracing::instrument(skip_all)]
    async fn reactivate_key(
        &self,
        request: Request<pb::ReactivateKeyRequest>,
    ) -> Result<Response<pb::LicenseKey>, Status> {
        let admin = self.admin(&request).await?;
        let license = self.licenses.reactivate(&request.get_ref().key, &admin).await?;
        Ok(self.answer(license))
    }

    #[tracing::instrument(skip_all)]
    async fn get_key_history(
        &self,
        request: Request<pb::GetKeyHistoryRequest>,
    ) -> Result<Response<pb::GetKeyHistoryResponse>, Status> {
        let admin = self.admin_id(&request).await?;
        let entries = self.licenses.history(&request.get_ref().key, admin).await?;
        Ok(Response::new(pb::GetKeyHistoryResponse {
            entries: entries.into_iter().map(Into::into).collect(),
        }))
    }

    async fn list_customer_history(
        &self,
        request: Request<pb::ListCustomerHistoryRequest>,
    ) -> Result<Response<pb::GetKeyHistoryResponse>, Status> {
        self.admin(&request).await?;
        let owner = optional_user_id(&request.get_ref().user_id, "user_id")?
            .ok_or_else(|| Error::invalid("user_id", "user_id is required"))?;
        let entries = self.licenses.history_of_owner(owner).await?;
        Ok(Response::new(pb::GetKeyHistoryResponse {
            entries: entries.into_iter().map(Into::into).collect(),
        }))
    }

    // No span of its own beyond the server's: this is the hot path.
    async fn validate_key(
        &self,
        request: Request<pb::ValidateKeyRequest>,
    ) -> Result<Response<pb::ValidateKeyResponse>, Status> {
        let validity = self.licenses.validate(&request.get_ref().key).await?;
        Ok(Response::new(validity.into()))
    }

    #[tracing::instrument(skip_all)]
    async fn set_customer_access(
        &self,
        request: Request<pb::SetCustomerAccessRequest>,
    ) -> Result<Response<pb::SetCustomerAccessResponse>, Status> {
        let principal = self
            .authenticator
            .authenticate_service_or_admin(request.metadata())
            .await?;
        let performed_by = match &principal {
            platform::auth::Principal::Service => SERVICE_ACTOR.to_owned(),
            platform::auth::Principal::User(caller) => caller.user_id.to_string(),
        };
        let pb::SetCustomerAccessRequest {
            customer,
            access,
            version,
            suspension,
        } = request.into_inner();
        let customer = match customer {
            Some(pb::set_customer_access_request::Customer::UserId(id)) => CustomerRef::UserId(
                optional_user_id(&id, "user_id")?.ok_or_else(|| Error::invalid("user_id", "user_id is required"))?,
            ),
            Some(pb::set_customer_access_request::Customer::Email(email)) => {
                CustomerRef::Email(Email::parse(&email).map_err(|message| Error::invalid("email", message))?)
            }
            None => return Err(Error::invalid("customer", "a user_id or an email is required").into()),
        };
        let access = match pb::CustomerAccess::try_from(access) {
            Ok(pb::CustomerAccess::Active) => Access::Active,
            Ok(pb::CustomerAccess::Suspended) => match pb::DisabledReason::try_from(suspension) {
                Ok(pb::DisabledReason::Unspecified | pb::DisabledReason::Payment) => {
                    Access::Suspended(DisabledReason::Payment)
                }
                Ok(pb::DisabledReason::AccountClosed) => Access::Suspended(DisabledReason::AccountClosed),
                _ => {
                    return Err(Error::invalid("suspension", "suspension must be PAYMENT or ACCOUNT_CLOSED").into());
                }
            },
            _ => return Err(Error::invalid("access", "access must be ACTIVE or SUSPENDED").into()),
        };
        let changed = self
            .licenses
            .set_customer_access(customer, access, version, &performed_by)
            .await?;
        // Committed but not answered: billing sees a failed call and sends
        // the same change again, which must change nothing more.
        platform::fail_point::fail_point("license.after_access_commit");
        let now = self.licenses.now();
        Ok(Response::new(pb::SetCustomerAccessResponse {
            changed: changed.into_iter().map(|license| to_wire(license, now)).collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn erase_customer(
        &self,
        request: Request<pb::EraseCustomerRequest>,
    ) -> Result<Response<pb::EraseCustomerResponse>, Status> {
        self.authenticator.authenticate_service(request.metadata()).await?;
        let body = request.into_inner();
        let user_id = optional_user_id(&body.user_id, "user_id")?;
        let email = match body.email.trim() {
            "" => None,
            email => Some(Email::parse(email).map_err(|message| Error::invalid("email", message))?),
        };
        if user_id.is_none() && email.is_none() {
            return Err(Error::invalid("user_id", "a user_id or an email is required").into());
        }
        let erased = self.licenses.erase_customer(user_id, email).await?;
        Ok(Response::new(pb::EraseCustomerResponse {
            keys_erased: erased.try_into().unwrap_or(u32::MAX),
        }))
    }
}
