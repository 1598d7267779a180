//! Message texts, rendered from the templates in `templates/` (plain text and HTML for
//! email, plain text for SMS). Codes and links appear only in the rendered message.

use askama::Template;

use super::OutgoingMessage;

/// What a message is about, as shown to its reader.
pub struct Context<'a> {
    pub issuer: &'a str,
    /// When it happened, in words (`on 2026-11-22 at 10:15 UTC`).
    pub when: String,
    pub ip: Option<&'a str>,
    pub device: Option<&'a str>,
}

/// A template pair rendering the same fields as plain text and as HTML.
macro_rules! text_and_html {
    ($text:ident = $text_path:tt, $html:ident = $html_path:tt { $($field:ident: $ty:ty),* $(,)? }) => {
        #[derive(Template)]
        #[template(path = $text_path)]
        struct $text<'a> { $($field: $ty),* }

        #[derive(Template)]
        #[template(path = $html_path)]
        struct $html<'a> { $($field: $ty),* }
    };
}

text_and_html!(CodeText = "email/code.txt", CodeHtml = "email/code.html" {
    issuer: &'a str,
    code: &'a str,
    purpose: &'a str,
    minutes: i64,
});

text_and_html!(LinkText = "email/link.txt", LinkHtml = "email/link.html" {
    issuer: &'a str,
    url: &'a str,
    purpose: &'a str,
    minutes: i64,
    when: &'a str,
    ip: Option<&'a str>,
    device: Option<&'a str>,
});

text_and_html!(NoticeText = "email/notification.txt", NoticeHtml = "email/notification.html" {
    issuer: &'a str,
    title: &'a str,
    body: &'a str,
    when: &'a str,
    ip: Option<&'a str>,
    device: Option<&'a str>,
});

#[derive(Template)]
#[template(path = "sms/notice.txt")]
struct SmsNotice<'a> {
    issuer: &'a str,
    title: &'a str,
    body: &'a str,
}

/// A security notification by text message (to a phone number being replaced).
pub fn notification_sms(
    issuer: &str,
    to: &str,
    title: &str,
    body: &str,
) -> Result<OutgoingMessage, askama::Error> {
    Ok(OutgoingMessage {
        to: to.to_owned(),
        subject: String::new(),
        text: SmsNotice { issuer, title, body }.render()?,
        html: None,
    })
}

#[derive(Template)]
#[template(path = "sms/code.txt")]
struct SmsCode<'a> {
    issuer: &'a str,
    code: &'a str,
    minutes: i64,
    /// The public host, for origin-bound one-time codes (`@host #code`) that phones
    /// offer to fill in on that site only.
    host: Option<&'a str>,
}

/// An email with a one-time code; `purpose` completes "Enter it to ...".
pub fn code_email(
    issuer: &str,
    to: &str,
    code: &str,
    purpose: &str,
    minutes: i64,
) -> Result<OutgoingMessage, askama::Error> {
    Ok(OutgoingMessage {
        to: to.to_owned(),
        subject: format!("{code} is your {issuer} verification code"),
        text: CodeText { issuer, code, purpose, minutes }.render()?,
        html: Some(CodeHtml { issuer, code, purpose, minutes }.render()?),
    })
}

/// A text message with a one-time code.
pub fn code_sms(
    issuer: &str,
    to: &str,
    code: &str,
    minutes: i64,
    host: Option<&str>,
) -> Result<OutgoingMessage, askama::Error> {
    Ok(OutgoingMessage {
        to: to.to_owned(),
        subject: String::new(),
        text: SmsCode { issuer, code, minutes, host }.render()?,
        html: None,
    })
}

/// An email with a magic link; `purpose` completes "Open this link to ...".
pub fn link_email(
    context: &Context<'_>,
    to: &str,
    url: &str,
    purpose: &str,
    minutes: i64,
) -> Result<OutgoingMessage, askama::Error> {
    let subject = format!("Your {} sign-in link", context.issuer);
    account_link_email(context, to, &subject, url, purpose, minutes)
}

/// An email with a link that changes the account (a password reset, a recovery link),
/// written as a magic link's is; `purpose` completes "Open this link to ...".
pub fn account_link_email(
    context: &Context<'_>,
    to: &str,
    subject: &str,
    url: &str,
    purpose: &str,
    minutes: i64,
) -> Result<OutgoingMessage, askama::Error> {
    let Context { issuer, when, ip, device } = context;
    let when = when.as_str();
    Ok(OutgoingMessage {
        to: to.to_owned(),
        subject: subject.to_owned(),
        text: LinkText { issuer, url, purpose, minutes, when, ip: *ip, device: *device }.render()?,
        html: Some(LinkHtml { issuer, url, purpose, minutes, when, ip: *ip, device: *device }.render()?),
    })
}

/// A security notification.
pub fn notification_email(
    context: &Context<'_>,
    to: &str,
    title: &str,
    body: &str,
) -> Result<OutgoingMessage, askama::Error> {
    let Context { issuer, when, ip, device } = context;
    let when = when.as_str();
    Ok(OutgoingMessage {
        to: to.to_owned(),
        subject: format!("{issuer}: {title}"),
        text: NoticeText { issuer, title, body, when, ip: *ip, device: *device }.render()?,
        html: Some(NoticeHtml { issuer, title, body, when, ip: *ip, device: *device }.render()?),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn html_bodies_escape_what_they_show() {
        let context =
            Context { issuer: "Acme", when: "now".into(), ip: Some("10.0.0.1"), device: Some("<script>") };
        let message =
            notification_email(&context, "a@example.com", "New factor", "A factor was added.").unwrap();
        let html = message.html.unwrap();
        assert!(html.contains("&#60;script&#62;") || html.contains("&lt;script&gt;"), "{html}");
        assert!(message.text.contains("Device: <script>"), "plain text is not escaped");
    }

    #[test]
    fn sms_codes_are_origin_bound_when_the_host_is_known() {
        let message = code_sms("Acme", "+14155550123", "123456", 10, Some("auth.example.com")).unwrap();
        assert!(message.text.starts_with("123456 is your Acme verification code."), "{}", message.text);
        assert!(message.text.ends_with("@auth.example.com #123456"), "{}", message.text);
    }
}
