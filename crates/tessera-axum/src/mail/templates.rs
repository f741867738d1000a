//! The mail templates: text and HTML for every [`Notice`] kind, built in
//! (`templates/mail/`), each replaceable by a file of the same name from
//! the `mail_templates` directory.
//!
//! Templates are minijinja (Jinja2 syntax): `.html` templates escape every
//! value as HTML, `.txt` templates escape nothing. Each kind `K` has
//! `K.subject.txt`, `K.txt` and `K.html`; the bodies extend `layout.txt` and
//! `layout.html`. Variables: `site` (the site name), `to` (the recipient),
//! `link` (or `reset_link` for `already_registered`) and `new_email` where
//! the notice has them.

use std::collections::BTreeMap;

use minijinja::{Environment, context};
use tessera_core::{Notice, OutgoingMail};

/// The built-in templates, by file name.
const BUILT_IN: &[(&str, &str)] = &[
    (
        "account_deleted.html",
        include_str!("../../templates/mail/account_deleted.html"),
    ),
    (
        "account_deleted.subject.txt",
        include_str!("../../templates/mail/account_deleted.subject.txt"),
    ),
    (
        "account_deleted.txt",
        include_str!("../../templates/mail/account_deleted.txt"),
    ),
    (
        "already_registered.html",
        include_str!("../../templates/mail/already_registered.html"),
    ),
    (
        "already_registered.subject.txt",
        include_str!("../../templates/mail/already_registered.subject.txt"),
    ),
    (
        "already_registered.txt",
        include_str!("../../templates/mail/already_registered.txt"),
    ),
    (
        "confirm_email_change.html",
        include_str!("../../templates/mail/confirm_email_change.html"),
    ),
    (
        "confirm_email_change.subject.txt",
        include_str!("../../templates/mail/confirm_email_change.subject.txt"),
    ),
    (
        "confirm_email_change.txt",
        include_str!("../../templates/mail/confirm_email_change.txt"),
    ),
    (
        "email_change_requested.html",
        include_str!("../../templates/mail/email_change_requested.html"),
    ),
    (
        "email_change_requested.subject.txt",
        include_str!("../../templates/mail/email_change_requested.subject.txt"),
    ),
    (
        "email_change_requested.txt",
        include_str!("../../templates/mail/email_change_requested.txt"),
    ),
    (
        "email_changed.html",
        include_str!("../../templates/mail/email_changed.html"),
    ),
    (
        "email_changed.subject.txt",
        include_str!("../../templates/mail/email_changed.subject.txt"),
    ),
    (
        "email_changed.txt",
        include_str!("../../templates/mail/email_changed.txt"),
    ),
    (
        "invite.html",
        include_str!("../../templates/mail/invite.html"),
    ),
    (
        "invite.subject.txt",
        include_str!("../../templates/mail/invite.subject.txt"),
    ),
    (
        "invite.txt",
        include_str!("../../templates/mail/invite.txt"),
    ),
    (
        "layout.html",
        include_str!("../../templates/mail/layout.html"),
    ),
    (
        "layout.txt",
        include_str!("../../templates/mail/layout.txt"),
    ),
    (
        "password_changed.html",
        include_str!("../../templates/mail/password_changed.html"),
    ),
    (
        "password_changed.subject.txt",
        include_str!("../../templates/mail/password_changed.subject.txt"),
    ),
    (
        "password_changed.txt",
        include_str!("../../templates/mail/password_changed.txt"),
    ),
    (
        "reset_password.html",
        include_str!("../../templates/mail/reset_password.html"),
    ),
    (
        "reset_password.subject.txt",
        include_str!("../../templates/mail/reset_password.subject.txt"),
    ),
    (
        "reset_password.txt",
        include_str!("../../templates/mail/reset_password.txt"),
    ),
    (
        "verify_email.html",
        include_str!("../../templates/mail/verify_email.html"),
    ),
    (
        "verify_email.subject.txt",
        include_str!("../../templates/mail/verify_email.subject.txt"),
    ),
    (
        "verify_email.txt",
        include_str!("../../templates/mail/verify_email.txt"),
    ),
];

/// A template that could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// An override names no template tessera uses (a typo would otherwise
    /// be ignored silently).
    #[error("mail template {0:?} is not one tessera uses (expected e.g. verify_email.html)")]
    Unknown(String),
    /// A template does not parse or does not render.
    #[error("mail template {name}: {source}")]
    Template {
        /// The template's file name.
        name: String,
        /// What minijinja said.
        source: minijinja::Error,
    },
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line, no line breaks.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
}

/// The templates, loaded and checked.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    site: String,
}

impl Templates {
    /// The built-in templates with `overrides` (file name → contents) in
    /// their place; every kind is rendered once with sample values, so that
    /// a broken override stops start-up instead of the first message.
    ///
    /// # Errors
    ///
    /// [`TemplateError`] for an unknown name or a template that fails.
    pub fn new(overrides: &BTreeMap<String, String>, site: &str) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .keep_trailing_newline(true)
                .build()
                .expect("the default delimiters are valid"),
        );
        env.set_formatter(format_value);
        for (name, source) in BUILT_IN {
            env.add_template(name, source)
                .map_err(|source| TemplateError::Template {
                    name: (*name).to_owned(),
                    source,
                })?;
        }
        for (name, source) in overrides {
            if !BUILT_IN.iter().any(|(n, _)| n == name) {
                return Err(TemplateError::Unknown(name.clone()));
            }
            env.add_template_owned(name.clone(), source.clone())
                .map_err(|source| TemplateError::Template {
                    name: name.clone(),
                    source,
                })?;
        }
        let templates = Self {
            env,
            site: site.to_owned(),
        };
        for sample in samples() {
            templates.render(&sample)?;
        }
        Ok(templates)
    }

    /// Renders `mail`.
    ///
    /// # Errors
    ///
    /// [`TemplateError::Template`] if a template fails.
    pub fn render(&self, mail: &OutgoingMail) -> Result<Rendered, TemplateError> {
        let kind = mail.notice.kind();
        let (link, reset_link) = match &mail.notice {
            Notice::AlreadyRegistered { reset_link } => (None, Some(reset_link.as_str())),
            other => (other.link(), None),
        };
        let ctx = context! {
            site => self.site.as_str(),
            to => mail.to.as_str(),
            link => link,
            reset_link => reset_link,
            new_email => mail.notice.new_email().map(|e| e.as_str()),
        };
        let render = |name: String| {
            self.env
                .get_template(&name)
                .and_then(|t| t.render(&ctx))
                .map_err(|source| TemplateError::Template { name, source })
        };
        let subject = render(format!("{kind}.subject.txt"))?;
        Ok(Rendered {
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            text: render(format!("{kind}.txt"))?,
            html: render(format!("{kind}.html"))?,
        })
    }

    /// Names of every template (what `mail_templates` may override).
    pub fn names() -> impl Iterator<Item = &'static str> {
        BUILT_IN.iter().map(|(name, _)| *name)
    }
}

/// minijinja's formatter, except that HTML escaping leaves `/` alone (its
/// default writes `&#x2f;`, which is correct but makes every link in the
/// HTML source unreadable).
fn format_value(
    out: &mut minijinja::Output,
    state: &mut minijinja::State,
    value: &minijinja::Value,
) -> Result<(), minijinja::Error> {
    use std::fmt::Write as _;
    if matches!(state.auto_escape(), minijinja::AutoEscape::Html)
        && !value.is_safe()
        && let Some(text) = value.as_str()
    {
        for c in text.chars() {
            match c {
                '<' => out.write_str("&lt;")?,
                '>' => out.write_str("&gt;")?,
                '&' => out.write_str("&amp;")?,
                '"' => out.write_str("&quot;")?,
                '\'' => out.write_str("&#x27;")?,
                c => out.write_char(c)?,
            }
        }
        return Ok(());
    }
    minijinja::escape_formatter(out, state, value)
}

/// One message of every kind, for the start-up check.
fn samples() -> Vec<OutgoingMail> {
    let email = |s: &str| tessera_core::Email::parse(s).expect("valid sample address");
    let link = "https://auth.example/x?token=sample".to_owned();
    [
        Notice::VerifyEmail { link: link.clone() },
        Notice::ResetPassword { link: link.clone() },
        Notice::Invite { link: link.clone() },
        Notice::AlreadyRegistered {
            reset_link: link.clone(),
        },
        Notice::ConfirmEmailChange { link },
        Notice::EmailChangeRequested {
            new_email: email("new@example.com"),
        },
        Notice::EmailChanged {
            new_email: email("new@example.com"),
        },
        Notice::PasswordChanged,
        Notice::AccountDeleted,
    ]
    .into_iter()
    .map(|notice| OutgoingMail {
        to: email("user@example.com"),
        notice,
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn templates() -> Templates {
        Templates::new(&BTreeMap::new(), "Example").unwrap()
    }

    #[test]
    fn every_kind_has_a_subject_a_text_and_an_html_part() {
        let t = templates();
        assert_eq!(samples().len(), Notice::KINDS.len());
        for mail in samples() {
            let r = t.render(&mail).unwrap();
            assert!(r.subject.contains("Example"), "{r:?}");
            assert!(!r.subject.contains('\n'));
            assert!(r.text.starts_with("Hello,"), "{}", r.text);
            assert!(r.html.contains("<!DOCTYPE html>"));
            if let Some(link) = mail.notice.link() {
                assert!(r.text.contains(link), "{}", r.text);
                assert!(r.html.contains(&format!("href=\"{link}\"")), "{}", r.html);
            }
            if let Some(new) = mail.notice.new_email() {
                assert!(r.text.contains(new.as_str()));
            }
            assert!(!r.text.contains("{{"), "{}", r.text);
        }
    }

    #[test]
    fn html_escapes_values_and_text_does_not() {
        let t = Templates::new(&BTreeMap::new(), "A <b> & Co").unwrap();
        let r = t.render(&samples()[7]).unwrap();
        assert!(r.html.contains("A &lt;b&gt; &amp; Co"), "{}", r.html);
        assert!(r.text.contains("A <b> & Co"));
        let quoted = OutgoingMail {
            to: tessera_core::Email::parse("a@b.c").unwrap(),
            notice: Notice::VerifyEmail {
                link: "https://x.example/v?a=1&token=\"><script>".into(),
            },
        };
        let r = t.render(&quoted).unwrap();
        assert!(
            r.html
                .contains("href=\"https://x.example/v?a=1&amp;token=&quot;&gt;&lt;script&gt;\""),
            "{}",
            r.html
        );
    }

    #[test]
    fn overrides_replace_built_ins_and_unknown_names_are_refused() {
        let mut overrides = BTreeMap::new();
        overrides.insert(
            "password_changed.subject.txt".to_owned(),
            "Heads up from {{ site }}".to_owned(),
        );
        let t = Templates::new(&overrides, "Example").unwrap();
        assert_eq!(
            t.render(&samples()[7]).unwrap().subject,
            "Heads up from Example"
        );
        overrides.insert("pasword_changed.txt".to_owned(), "x".to_owned());
        assert!(matches!(
            Templates::new(&overrides, "Example"),
            Err(TemplateError::Unknown(_))
        ));
        let mut broken = BTreeMap::new();
        broken.insert("invite.html".to_owned(), "{% if %}".to_owned());
        assert!(Templates::new(&broken, "Example").is_err());
    }
}
