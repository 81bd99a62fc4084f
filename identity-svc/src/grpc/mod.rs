//! The `reactivation.identity.v1.IdentityService` gRPC surface: converts
//! requests into domain calls once at the edge, authenticates callers and
//! checks their role (as every service does, here and nowhere deeper: the
//! use cases trust the caller they are handed), and converts results back.

use platform::{
    auth::{Authenticator, Caller, Role},
    wire,
};
use proto::identity::v1 as pb;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    accounts::{Accounts, Session},
    domain::{Account, AccountEvent, DeactivationReason, EmailSearch, PageToken, lookup},
    error::Error,
    web_sessions::WebLogin,
};

/// How many weeks the reactivation funnel looks back, week by week.
const FUNNEL_WEEKS: i64 = 12;

#[derive(Clone, Debug)]
pub struct IdentityService {
    pub(crate) accounts: Accounts,
    pub(crate) authenticator: Authenticator,
}

impl IdentityService {
    async fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        self.authenticator.authenticate(request.metadata()).await
    }
}

fn parse_user_id(raw: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(raw.trim()).map_err(|_| Error::invalid("user_id", "user_id must be a UUID"))
}

fn optional_text(raw: String) -> Option<String> {
    Some(raw).filter(|text| !text.trim().is_empty())
}

fn reason_from_wire(raw: i32) -> Result<Option<DeactivationReason>, Error> {
    use pb::DeactivationReason as Wire;
    match Wire::try_from(raw) {
        Ok(Wire::Unspecified) => Ok(None),
        Ok(Wire::Self_) => Ok(Some(DeactivationReason::SelfService)),
        Ok(Wire::Admin) => Ok(Some(DeactivationReason::Admin)),
        Ok(Wire::Nonpayment) => Ok(Some(DeactivationReason::Nonpayment)),
        Ok(Wire::Fraud) => Ok(Some(DeactivationReason::Fraud)),
        Err(_) => Err(Error::invalid("reason", "unknown deactivation reason")),
    }
}

fn reason_to_wire(reason: Option<DeactivationReason>) -> pb::DeactivationReason {
    match reason {
        None => pb::DeactivationReason::Unspecified,
        Some(DeactivationReason::SelfService) => pb::DeactivationReason::Self_,
        Some(DeactivationReason::Admin) => pb::DeactivationReason::Admin,
        Some(DeactivationReason::Nonpayment) => pb::DeactivationReason::Nonpayment,
        Some(DeactivationReason::Fraud) => pb::DeactivationReason::Fraud,
    }
}

fn login_response(session: Session) -> pb::LoginResponse {
    pb::LoginResponse {
        access_token: session.access_token,
        token_type: "Bearer".into(),
        expires_in: session.expires_in,
        user: Some(session.account.into()),
    }
}

impl From<Account> for pb::User {
    fn from(account: Account) -> Self {
        let role = match account.role {
            Role::Admin => pb::Role::Admin,
            Role::User => pb::Role::User,
        };
        Self {
            id: account.id.to_string(),
            email: account.email,
            role: role.into(),
            is_active: account.is_active,
            created_at: Some(wire::timestamp(account.created_at)),
            deactivated_at: wire::optional_timestamp(account.deactivated_at),
            deactivation_reason: reason_to_wire(account.deactivation_reason).into(),
            reactivated_at: wire::optional_timestamp(account.reactivated_at),
            reactivation_count: u32::try_from(account.reactivation_count).unwrap_or_default(),
            last_cancellation_reason: account.last_cancellation_reason.unwrap_or_default(),
        }
    }
}

impl From<AccountEvent> for pb::AccountEvent {
    fn from(event: AccountEvent) -> Self {
        Self {
            id: event.id.to_string(),
            user_id: event.user_id.to_string(),
            event_type: event.event_type,
            data_json: event.data.to_string(),
            trace_id: event.trace_id.unwrap_or_default(),
            actor_id: event.actor_id.map(|id| id.to_string()).unwrap_or_default(),
            occurred_at: Some(wire::timestamp(event.occurred_at)),
        }
    }
}

#[tonic::async_trait]
impl pb::identity_service_server::IdentityService for IdentityService {
    #[tracing::instrument(skip_all)]
    async fn register(&self, request: Request<pb::RegisterRequest>) -> Result<Response<pb::RegisterResponse>, Status> {
        let pb::RegisterRequest { email, password } = request.into_inner();
        let account = self.accounts.register(&email, password).await?;
        Ok(Response::new(pb::RegisterResponse {
            user: Some(account.into()),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn login(&self, request: Request<pb::LoginRequest>) -> Result<Response<pb::LoginResponse>, Status> {
        let pb::LoginRequest {
            email,
            password,
            client_address,
        } = request.into_inner();
        let session = self.accounts.login(&email, &password, &client_address).await?;
        Ok(Response::new(login_response(session)))
    }

    #[tracing::instrument(skip_all)]
    async fn start_web_session(&self, request: Request<pb::LoginRequest>) -> Result<Response<pb::WebSession>, Status> {
        let pb::LoginRequest {
            email,
            password,
            client_address,
        } = request.into_inner();
        let answer = match self
            .accounts
            .start_web_session(&email, &password, &client_address)
            .await?
        {
            WebLogin::SignedIn { session, token } => pb::WebSession {
                login: Some(login_response(session)),
                session_token: token,
                ..Default::default()
            },
            WebLogin::Inactive { self_service, proof } => pb::WebSession {
                login: None,
                session_token: proof.unwrap_or_default(),
                inactive: true,
                self_service_reactivation: self_service,
            },
        };
        Ok(Response::new(answer))
    }

    #[tracing::instrument(skip_all)]
    async fn refresh_web_session(
        &self,
        request: Request<pb::RefreshWebSessionRequest>,
    ) -> Result<Response<pb::WebSession>, Status> {
        let token = request.into_inner().session_token;
        let (session, token) = self.accounts.refresh_web_session(&token).await?;
        Ok(Response::new(pb::WebSession {
            login: Some(login_response(session)),
            session_token: token,
            ..Default::default()
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn end_web_session(
        &self,
        request: Request<pb::EndWebSessionRequest>,
    ) -> Result<Response<pb::EndWebSessionResponse>, Status> {
        self.accounts
            .end_web_session(&request.into_inner().session_token)
            .await?;
        Ok(Response::new(pb::EndWebSessionResponse {}))
    }

    #[tracing::instrument(skip_all)]
    async fn get_me(&self, request: Request<pb::GetMeRequest>) -> Result<Response<pb::User>, Status> {
        let caller = self.caller(&request).await?;
        Ok(Response::new(self.accounts.me(&caller).await?.into()))
    }

    #[tracing::instrument(skip_all)]
    async fn deactivate_user(&self, request: Request<pb::DeactivateUserRequest>) -> Result<Response<pb::User>, Status> {
        let caller = self.caller(&request).await?;
        let pb::DeactivateUserRequest {
            user_id,
            reason,
            comment,
        } = request.into_inner();
        let target = if user_id.trim().is_empty() {
            None
        } else {
            Some(parse_user_id(&user_id)?)
        };
        let reason = reason_from_wire(reason)?;
        let target = target.unwrap_or(caller.user_id);
        caller.require_self_or_admin(target).map_err(Error::from)?;
        let reason = reason.unwrap_or(DeactivationReason::SelfService);
        if reason != DeactivationReason::SelfService {
            caller.require_admin().map_err(Error::from)?;
        }
        let account = self
            .accounts
            .deactivate(&caller, target, reason, optional_text(comment))
            .await?;
        Ok(Response::new(account.into()))
    }

    #[tracing::instrument(skip_all)]
    async fn admin_reactivate_user(
        &self,
        request: Request<pb::AdminReactivateUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let caller = self.caller(&request).await?;
        let pb::AdminReactivateUserRequest { user_id, note } = request.into_inner();
        let target = parse_user_id(&user_id)?;
        caller.require_admin().map_err(Error::from)?;
        let account = self
            .accounts
            .admin_reactivate(&caller, target, optional_text(note))
            .await?;
        Ok(Response::new(account.into()))
    }

    #[tracing::instrument(skip_all)]
    async fn request_reactivation(
        &self,
        request: Request<pb::RequestReactivationRequest>,
    ) -> Result<Response<pb::RequestReactivationResponse>, Status> {
        let pb::RequestReactivationRequest { email, client_address } = request.into_inner();
        self.accounts.request_reactivation(&email, &client_address).await?;
        Ok(Response::new(pb::RequestReactivationResponse {}))
    }

    #[tracing::instrument(skip_all)]
    async fn confirm_reactivation(
        &self,
        request: Request<pb::ConfirmReactivationRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let account = self.accounts.confirm_reactivation(&request.get_ref().token).await?;
        Ok(Response::new(account.into()))
    }

    #[tracing::instrument(skip_all)]
    async fn list_account_events(
        &self,
        request: Request<pb::ListAccountEventsRequest>,
    ) -> Result<Response<pb::ListAccountEventsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let target = parse_user_id(&request.get_ref().user_id)?;
        caller.require_admin().map_err(Error::from)?;
        let events = self.accounts.events(&caller, target).await?;
        Ok(Response::new(pb::ListAccountEventsResponse {
            events: events.into_iter().map(Into::into).collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn find_users(
        &self,
        request: Request<pb::FindUsersRequest>,
    ) -> Result<Response<pb::FindUsersResponse>, Status> {
        let caller = self.caller(&request).await?;
        caller.require_admin().map_err(Error::from)?;
        let pb::FindUsersRequest {
            email,
            prefix,
            page_size,
            page_token,
        } = request.into_inner();
        let search = EmailSearch::parse(&email, prefix).map_err(|message| Error::invalid("email", message))?;
        let after = match page_token.trim() {
            "" => None,
            token => Some(PageToken::decode(token).map_err(|message| Error::invalid("page_token", message))?),
        };
        let (accounts, next) = self
            .accounts
            .find(&caller, &search, lookup::page_size(page_size), after.as_ref())
            .await?;
        Ok(Response::new(pb::FindUsersResponse {
            users: accounts.into_iter().map(Into::into).collect(),
            next_page_token: next.map(|token| token.encode()).unwrap_or_default(),
        }))
    }

    async fn record_link_opened(
        &self,
        request: Request<pb::RecordLinkOpenedRequest>,
    ) -> Result<Response<pb::RecordLinkOpenedResponse>, Status> {
        self.accounts.link_opened(&request.get_ref().token).await?;
        Ok(Response::new(pb::RecordLinkOpenedResponse {}))
    }

    async fn get_reactivation_funnel(
        &self,
        request: Request<pb::GetReactivationFunnelRequest>,
    ) -> Result<Response<pb::ReactivationFunnel>, Status> {
        let caller = self.caller(&request).await?;
        caller.require_admin().map_err(Error::from)?;
        let (requested, email_sent, link_opened, confirmed) = self.accounts.funnel().await?;
        let weeks = self.accounts.funnel_weeks(FUNNEL_WEEKS).await?;
        let count = |n: i64| n.max(0) as u64;
        Ok(Response::new(pb::ReactivationFunnel {
            requested: count(requested),
            email_sent: count(email_sent),
            link_opened: count(link_opened),
            confirmed: count(confirmed),
            weeks: weeks
                .into_iter()
                .map(|week| pb::FunnelWeek {
                    week_start: Some(wire::timestamp(week.week_start)),
                    requested: count(week.requested),
                    email_sent: count(week.email_sent),
                    link_opened: count(week.link_opened),
                    confirmed: count(week.confirmed),
                })
                .collect(),
        }))
    }

    async fn delete_user(
        &self,
        request: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<pb::DeleteUserResponse>, Status> {
        let caller = self.caller(&request).await?;
        let user_id = &request.get_ref().user_id;
        let target = if user_id.trim().is_empty() {
            None
        } else {
            Some(parse_user_id(user_id)?)
        };
        caller
            .require_self_or_admin(target.unwrap_or(caller.user_id))
            .map_err(Error::from)?;
        let (erasure_id, erased_at) = self.accounts.erase(&caller, target).await?;
        Ok(Response::new(pb::DeleteUserResponse {
            erasure_id: erasure_id.to_string(),
            erased_at: Some(platform::wire::timestamp(erased_at)),
        }))
    }

    async fn send_customer_email(
        &self,
        request: Request<pb::SendCustomerEmailRequest>,
    ) -> Result<Response<pb::SendCustomerEmailResponse>, Status> {
        self.authenticator.authenticate_service(request.metadata()).await?;
        let request = request.into_inner();
        let user_id = parse_user_id(&request.user_id)?;
        let template = proto::notify::v1::Template::from_str_name(request.template.trim())
            .filter(|template| *template != proto::notify::v1::Template::Unspecified)
            .ok_or_else(|| Error::invalid("template", "unknown template"))?;
        let key = request.idempotency_key.trim();
        if key.is_empty() {
            return Err(Error::invalid("idempotency_key", "idempotency_key is required").into());
        }
        let owed = self
            .accounts
            .send_customer_email(user_id, template, request.variables, key)
            .await?;
        Ok(Response::new(pb::SendCustomerEmailResponse { owed }))
    }
}
