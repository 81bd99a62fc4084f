//! The `reactivation.notify.v1.NotifyService` gRPC surface: authorizes every
//! call (another service of the mesh, or an admin), converts requests into
//! domain values once at the edge, and converts results back.

use platform::{auth::Authenticator, wire};
use proto::notify::v1 as pb;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    domain::{Email, IdempotencyKey, Message, MessageState, Template},
    error::Error,
    messages::{Enqueue, Messages},
};

#[derive(Clone, Debug)]
pub struct NotifyService {
    pub(crate) messages: Messages,
    pub(crate) authenticator: Authenticator,
}

impl NotifyService {
    /// Only services of the mesh and admins may send or read messages.
    async fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        self.authenticator
            .authenticate_service_or_admin(request.metadata())
            .await?;
        Ok(())
    }
}

fn template_from_wire(raw: i32) -> Result<Template, Error> {
    use pb::Template as Wire;
    match Wire::try_from(raw) {
        Ok(Wire::Unspecified) => Err(Error::invalid("template", "template is required")),
        Ok(Wire::ReactivationLink) => Ok(Template::ReactivationLink),
        Ok(Wire::AccountReactivated) => Ok(Template::AccountReactivated),
        Ok(Wire::RetentionReminder) => Ok(Template::RetentionReminder),
        Ok(Wire::LicenseKey) => Ok(Template::LicenseKey),
        Ok(Wire::SubscriptionReactivated) => Ok(Template::SubscriptionReactivated),
        Ok(Wire::WelcomeBackOffer) => Ok(Template::WelcomeBackOffer),
        Ok(Wire::AccountErased) => Ok(Template::AccountErased),
        Ok(Wire::SubscriptionEndingSoon) => Ok(Template::SubscriptionEndingSoon),
        Err(_) => Err(Error::invalid("template", "unknown template")),
    }
}

fn template_to_wire(template: Template) -> pb::Template {
    match template {
        Template::ReactivationLink => pb::Template::ReactivationLink,
        Template::AccountReactivated => pb::Template::AccountReactivated,
        Template::RetentionReminder => pb::Template::RetentionReminder,
        Template::LicenseKey => pb::Template::LicenseKey,
        Template::SubscriptionReactivated => pb::Template::SubscriptionReactivated,
        Template::WelcomeBackOffer => pb::Template::WelcomeBackOffer,
        Template::AccountErased => pb::Template::AccountErased,
        Template::SubscriptionEndingSoon => pb::Template::SubscriptionEndingSoon,
    }
}

fn state_to_wire(state: MessageState) -> pb::MessageState {
    match state {
        MessageState::Pending => pb::MessageState::Pending,
        MessageState::Sent => pb::MessageState::Sent,
        MessageState::Failed => pb::MessageState::Failed,
    }
}

/// The mesh's one rule for an address, and one the SMTP client can address
/// too, so a message that was accepted can always be sent.
fn recipient_from_wire(raw: &str) -> Result<Email, String> {
    let email = Email::parse(raw)?;
    email
        .as_str()
        .parse::<lettre::Address>()
        .map_err(|_| "recipient must be an email address".to_owned())?;
    Ok(email)
}

impl TryFrom<pb::EnqueueRequest> for Enqueue {
    type Error = Error;

    fn try_from(request: pb::EnqueueRequest) -> Result<Self, Error> {
        let pb::EnqueueRequest {
            template,
            recipient,
            variables,
            idempotency_key,
        } = request;
        Ok(Self {
            template: template_from_wire(template)?,
            recipient: recipient_from_wire(&recipient).map_err(|message| Error::invalid("recipient", message))?,
            idempotency_key: IdempotencyKey::parse(idempotency_key)
                .map_err(|message| Error::invalid("idempotency_key", message))?,
            variables: variables.into_iter().collect(),
        })
    }
}

impl From<Message> for pb::Message {
    fn from(message: Message) -> Self {
        Self {
            id: message.id.to_string(),
            template: template_to_wire(message.template).into(),
            recipient: message.recipient,
            state: state_to_wire(message.state).into(),
            attempts: u32::try_from(message.attempts).unwrap_or_default(),
            last_error: message.last_error.unwrap_or_default(),
            idempotency_key: message.idempotency_key,
            created_at: Some(wire::timestamp(message.created_at)),
            next_attempt_at: wire::optional_timestamp(message.next_attempt_at),
            sent_at: wire::optional_timestamp(message.sent_at),
        }
    }
}

#[tonic::async_trait]
impl pb::notify_service_server::NotifyService for NotifyService {
    #[tracing::instrument(skip_all)]
    async fn enqueue(&self, request: Request<pb::EnqueueRequest>) -> Result<Response<pb::EnqueueResponse>, Status> {
        self.authorize(&request).await?;
        let enqueue = Enqueue::try_from(request.into_inner())?;
        let enqueued = self.messages.enqueue(enqueue).await?;
        Ok(Response::new(pb::EnqueueResponse {
            message_id: enqueued.message_id.to_string(),
            duplicate: enqueued.duplicate,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_message(&self, request: Request<pb::GetMessageRequest>) -> Result<Response<pb::Message>, Status> {
        self.authorize(&request).await?;
        let id = Uuid::parse_str(request.get_ref().message_id.trim())
            .map_err(|_| Error::invalid("message_id", "message_id must be a UUID"))?;
        Ok(Response::new(self.messages.get(id).await?.into()))
    }

    #[tracing::instrument(skip_all)]
    async fn erase_recipient(
        &self,
        request: Request<pb::EraseRecipientRequest>,
    ) -> Result<Response<pb::EraseRecipientResponse>, Status> {
        self.authenticator.authenticate_service(request.metadata()).await?;
        let body = request.into_inner();
        let recipient = body.recipient.trim().to_lowercase();
        if recipient.is_empty() {
            return Err(Error::invalid("recipient", "recipient is required").into());
        }
        let erased = self
            .messages
            .erase_recipient(&recipient, body.keep_idempotency_key.trim())
            .await?;
        Ok(Response::new(pb::EraseRecipientResponse {
            messages_erased: erased.try_into().unwrap_or(u32::MAX),
        }))
    }
}
