//! Rendering a template into a subject, a plain-text body and an HTML body.
//!
//! The template files live in `notify-svc/templates/` and are compiled into
//! the binary, so a deployed service can never miss one. They are minijinja
//! (Jinja2) templates: `.html` files are HTML-escaped automatically, the
//! others are plain text. Undefined variables are errors rather than empty
//! strings, and a template sees only the variables it declares (see
//! [`Template::variables`]) plus `product_name` and `public_url` from the
//! configuration — so the tests below prove each file uses exactly its
//! contract.

use std::{collections::BTreeMap, sync::Arc};

use minijinja::{Environment, UndefinedBehavior};

use crate::domain::Template;

/// Every template file: `<template>.subject.txt`, `<template>.txt`, `<template>.html`.
macro_rules! template_files {
    ($($name:literal),* $(,)?) => {
        &[$(
            (concat!($name, ".subject.txt"), include_str!(concat!("../templates/", $name, ".subject.txt"))),
            (concat!($name, ".txt"), include_str!(concat!("../templates/", $name, ".txt"))),
            (concat!($name, ".html"), include_str!(concat!("../templates/", $name, ".html"))),
        )*]
    };
}

const FILES: &[(&str, &str)] = template_files!(
    "reactivation_link",
    "account_reactivated",
    "retention_reminder",
    "license_key",
    "subscription_reactivated",
    "welcome_back_offer",
    "account_erased",
    "subscription_ending_soon",
);

/// A message ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line: whitespace, newlines included, is collapsed.
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The caller's variables do not meet the template's contract; `field`
    /// is the request path of the culprit, e.g. `variables.link`.
    #[error("{message}")]
    InvalidVariable { field: String, message: String },
    /// A template file is broken: a defect of this service, not of the call.
    #[error("template {file} cannot be rendered")]
    Template {
        file: String,
        #[source]
        source: minijinja::Error,
    },
}

/// Renders templates with this deployment's product name and public URL.
/// Cheap to clone.
#[derive(Clone)]
pub struct Renderer {
    environment: Arc<Environment<'static>>,
    product_name: String,
    public_url: String,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("product_name", &self.product_name)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

impl Renderer {
    pub fn new(product_name: &str, public_url: &str) -> Self {
        let mut environment = Environment::new();
        environment.set_undefined_behavior(UndefinedBehavior::Strict);
        // `{% if %}` lines leave no blank lines behind in plain text.
        environment.set_trim_blocks(true);
        environment.set_lstrip_blocks(true);
        for (name, source) in FILES {
            environment
                .add_template(name, source)
                .unwrap_or_else(|err| panic!("template {name} does not parse: {err}"));
        }
        Self {
            environment: Arc::new(environment),
            product_name: product_name.trim().to_owned(),
            public_url: public_url.trim().trim_end_matches('/').to_owned(),
        }
    }

    /// Checks `variables` against the template's contract and renders it.
    /// Variables the template does not declare are ignored.
    pub fn render(&self, template: Template, variables: &BTreeMap<String, String>) -> Result<Rendered, RenderError> {
        let mut context = BTreeMap::new();
        for variable in template.variables() {
            let field = format!("variables.{}", variable.name);
            let Some(value) = variables.get(variable.name) else {
                return Err(RenderError::InvalidVariable {
                    message: format!("{field} is required by the {} template", template.as_str()),
                    field,
                });
            };
            variable
                .check(value)
                .map_err(|message| RenderError::InvalidVariable { field, message })?;
            context.insert(variable.name, value.as_str());
        }
        context.insert("product_name", &self.product_name);
        context.insert("public_url", &self.public_url);

        let name = template.as_str();
        let subject = self.render_file(&format!("{name}.subject.txt"), &context)?;
        Ok(Rendered {
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            text: self.render_file(&format!("{name}.txt"), &context)?,
            html: self.render_file(&format!("{name}.html"), &context)?,
        })
    }

    fn render_file(&self, file: &str, context: &BTreeMap<&str, &str>) -> Result<String, RenderError> {
        let failed = |source| RenderError::Template {
            file: file.to_owned(),
            source,
        };
        self.environment
            .get_template(file)
            .and_then(|template| template.render(context))
            .map_err(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renderer() -> Renderer {
        Renderer::new("Reactivation", "https://app.example.com/")
    }

    /// A valid value for every variable of `template`.
    fn variables_for(template: Template) -> BTreeMap<String, String> {
        template
            .variables()
            .iter()
            .map(|variable| {
                let value = match variable.name {
                    "link" => "https://app.example.com/reactivate?token=tok_123",
                    "reactivate_url" => "https://app.example.com/reactivate",
                    "pricing_url" => "https://app.example.com/pricing",
                    "subscription_url" => "https://app.example.com/subscription",
                    "end_date" => "December 18, 2026",
                    "expires_in_hours" => "24",
                    "days_left" => "7",
                    "purge_date" => "2026-12-01",
                    "license_key" => "ABCD-EFGH-IJKL-MNOP",
                    "key_type" => "subscription",
                    "expires_at" => "2027-01-01",
                    "plan" => "Pro",
                    "next_billing_date" => "2026-12-15",
                    "monthly_offer" => "50% off your first month",
                    "annual_offer" => "two months free",
                    other => panic!("no sample value for {other}"),
                };
                (variable.name.to_owned(), value.to_owned())
            })
            .collect()
    }

    #[test]
    fn every_template_renders_with_exactly_its_declared_variables() {
        let renderer = renderer();
        for template in Template::ALL {
            let variables = variables_for(template);
            let rendered = renderer
                .render(template, &variables)
                .unwrap_or_else(|err| panic!("{}: {err:?}", template.as_str()));
            assert!(!rendered.subject.is_empty(), "{}", template.as_str());
            assert!(!rendered.subject.contains('\n'));
            for value in variables.values() {
                assert!(
                    rendered.text.contains(value.as_str()),
                    "{} text lacks {value}",
                    template.as_str()
                );
            }
            assert!(rendered.text.contains("The Reactivation team"));
            // minijinja escapes `/` too; browsers and mail clients decode it.
            assert!(
                rendered.html.contains("href=\"https:&#x2f;&#x2f;app.example.com\""),
                "public_url, without its trailing slash"
            );
            assert!(rendered.html.starts_with("<!doctype html>"));
        }
    }

    #[test]
    fn the_reactivation_link_says_it_expires_is_single_use_and_can_be_ignored() {
        let rendered = renderer()
            .render(Template::ReactivationLink, &variables_for(Template::ReactivationLink))
            .unwrap();
        assert_eq!(rendered.subject, "Reactivate your Reactivation account");
        assert!(
            rendered
                .text
                .contains("\nhttps://app.example.com/reactivate?token=tok_123\n")
        );
        for body in [&rendered.text, &rendered.html] {
            assert!(body.contains("expires in 24 hours"));
            assert!(body.contains("used only once"));
            assert!(body.contains("you can ignore this email"));
        }
        assert!(
            rendered
                .html
                .contains("href=\"https:&#x2f;&#x2f;app.example.com&#x2f;reactivate?token=tok_123\"")
        );
    }

    #[test]
    fn a_missing_variable_is_refused_by_name() {
        let renderer = renderer();
        for template in Template::ALL {
            for variable in template.variables() {
                let mut variables = variables_for(template);
                variables.remove(variable.name);
                match renderer.render(template, &variables) {
                    Err(RenderError::InvalidVariable { field, message }) => {
                        assert_eq!(field, format!("variables.{}", variable.name));
                        assert!(message.contains(variable.name));
                    }
                    other => panic!("{}/{}: {other:?}", template.as_str(), variable.name),
                }
            }
        }
    }

    #[test]
    fn a_malformed_variable_is_refused_by_name() {
        let mut variables = variables_for(Template::ReactivationLink);
        variables.insert("link".into(), "javascript:alert(1)".into());
        let Err(RenderError::InvalidVariable { field, .. }) = renderer().render(Template::ReactivationLink, &variables)
        else {
            panic!("a javascript: link was accepted");
        };
        assert_eq!(field, "variables.link");
    }

    #[test]
    fn html_is_escaped_and_plain_text_is_not() {
        let renderer = Renderer::new("Tom & Jerry's <Tools>", "https://app.example.com");
        let mut variables = variables_for(Template::LicenseKey);
        variables.insert("key_type".into(), "<script>alert(\"x\")</script>".into());
        let rendered = renderer.render(Template::LicenseKey, &variables).unwrap();
        assert!(!rendered.html.contains("<script>"));
        assert!(
            rendered
                .html
                .contains("&lt;script&gt;alert(&quot;x&quot;)&lt;&#x2f;script&gt;")
        );
        assert!(rendered.html.contains("Tom &amp; Jerry&#x27;s &lt;Tools&gt;"));
        assert!(rendered.text.contains("<script>alert(\"x\")</script>"));
        assert_eq!(rendered.subject, "Your Tom & Jerry's <Tools> license key");
    }

    #[test]
    fn a_quote_cannot_break_out_of_a_link_attribute() {
        let mut variables = variables_for(Template::ReactivationLink);
        variables.insert(
            "link".into(),
            "https://app.example.com/r?t=1\"onmouseover=\"alert(1)".into(),
        );
        let rendered = renderer().render(Template::ReactivationLink, &variables).unwrap();
        assert!(!rendered.html.contains("\"onmouseover"));
        assert!(rendered.html.contains("&quot;onmouseover=&quot;"));
    }

    #[test]
    fn an_empty_expiry_reads_as_a_key_that_does_not_expire() {
        let mut variables = variables_for(Template::LicenseKey);
        variables.insert("expires_at".into(), String::new());
        let rendered = renderer().render(Template::LicenseKey, &variables).unwrap();
        assert!(rendered.text.contains("does not expire"));
        assert!(!rendered.text.contains("valid until"));
        assert!(
            !rendered.text.contains("\n\n\n"),
            "no blank lines left by the condition"
        );
    }

    #[test]
    fn a_template_referring_to_an_undeclared_variable_fails_instead_of_printing_nothing() {
        let outcome = renderer()
            .environment
            .render_str("Hello {{ frist_name }}", BTreeMap::<&str, &str>::new());
        assert!(outcome.is_err(), "a misspelt variable rendered as {outcome:?}");
    }
}
