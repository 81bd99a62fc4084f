//! Handing a rendered message to the outside world: an SMTP server, or the
//! development mailbox directory.
//!
//! Every message gets a `Message-ID` derived from its stored id, so if a
//! crash between "the server accepted it" and "we recorded that" makes it go
//! out twice, mail systems can tell the copies are one message.

use std::path::{Path, PathBuf};

use lettre::{
    Address, AsyncFileTransport, AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor,
    message::{Mailbox, MultiPart},
    transport::smtp::authentication::Credentials,
};

use crate::{
    config::{SmtpConfig, SmtpTls, Transport},
    db::messages::Due,
    domain::Template,
};

/// Parses `MAIL_FROM`: `Name <address>` or a bare address.
pub fn parse_sender(raw: &str) -> Result<Mailbox, String> {
    raw.trim()
        .parse()
        .map_err(|err| format!("{raw:?} is not a mailbox such as \"Name <no-reply@example.com>\": {err}"))
}

#[derive(Clone)]
enum Outlet {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Mailbox {
        transport: AsyncFileTransport<Tokio1Executor>,
        directory: PathBuf,
    },
}

/// Sends messages through the configured transport. Cheap to clone; SMTP
/// connections are pooled and reused between messages.
#[derive(Clone)]
pub struct Mailer {
    from: Mailbox,
    outlet: Outlet,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let outlet = match &self.outlet {
            Outlet::Smtp(_) => "smtp".to_owned(),
            Outlet::Mailbox { directory, .. } => format!("mailbox {}", directory.display()),
        };
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .field("outlet", &outlet)
            .finish()
    }
}

impl Mailer {
    /// Prepares the transport. Nothing connects yet: an SMTP server that is
    /// down at start-up only delays delivery, like one that goes down later.
    pub async fn new(transport: &Transport, mail_from: &str) -> anyhow::Result<Self> {
        let from = parse_sender(mail_from).map_err(|reason| anyhow::anyhow!("MAIL_FROM: {reason}"))?;
        let outlet = match transport {
            Transport::Smtp(smtp) => Outlet::Smtp(smtp_transport(smtp)?),
            Transport::Mailbox(directory) => {
                tokio::fs::create_dir_all(directory).await.map_err(|err| {
                    anyhow::anyhow!("cannot create the mailbox directory {}: {err}", directory.display())
                })?;
                tracing::info!(directory = %directory.display(), "development mailbox: messages are written as .eml files");
                Outlet::Mailbox {
                    transport: AsyncFileTransport::new(directory),
                    directory: directory.clone(),
                }
            }
        };
        Ok(Self { from, outlet })
    }

    /// Sends `message`; the error says why it was not accepted.
    pub async fn send(&self, message: &Due) -> anyhow::Result<()> {
        let recipient: Address = message.recipient.parse()?;
        let email = Message::builder()
            .message_id(Some(format!("<{}@{}>", message.id, self.from.email.domain())))
            .from(self.from.clone())
            .to(Mailbox::new(None, recipient))
            .subject(message.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                message.text_body.clone(),
                message.html_body.clone(),
            ))?;
        match &self.outlet {
            Outlet::Smtp(transport) => {
                transport.send(email).await?;
            }
            Outlet::Mailbox { transport, directory } => {
                let file = transport.send(email).await?;
                log_for_developer(message, directory, &file);
            }
        }
        Ok(())
    }
}

/// In the development mailbox only, the link of a reactivation email is
/// logged so the developer can follow it without opening the file. Over SMTP
/// links are never logged: they are one-time credentials.
fn log_for_developer(message: &Due, directory: &Path, file: &str) {
    let file = directory.join(format!("{file}.eml"));
    if Template::parse(&message.template) != Some(Template::ReactivationLink) {
        tracing::info!(file = %file.display(), "message written to the development mailbox");
        return;
    }
    let link = message
        .variables
        .as_ref()
        .and_then(|variables| variables.get("link"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    // The message id, template and attempt are on the caller's span.
    tracing::info!(
        file = %file.display(),
        link,
        "reactivation link written to the development mailbox"
    );
}

fn smtp_transport(smtp: &SmtpConfig) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let builder = match smtp.tls {
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
        SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)?,
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)?,
    };
    let builder = builder.port(smtp.port);
    let builder = match &smtp.credentials {
        Some((username, password)) => {
            builder.credentials(Credentials::new(username.clone(), password.expose().clone()))
        }
        None => builder,
    };
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::parse_sender;

    #[test]
    fn the_sender_may_carry_a_display_name() {
        let sender = parse_sender("Reactivation <no-reply@reactivation.test>").unwrap();
        assert_eq!(sender.name.as_deref(), Some("Reactivation"));
        assert_eq!(sender.email.to_string(), "no-reply@reactivation.test");
        assert!(parse_sender("no-reply@reactivation.test").is_ok());
        assert!(parse_sender("Reactivation").is_err());
    }
}
