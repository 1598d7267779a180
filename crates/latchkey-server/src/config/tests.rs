use super::*;
use secrecy::ExposeSecret;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("latchkey.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn defaults_need_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "");
    let config = Config::load(Some(&file), &env(&[]), &Overrides::default()).unwrap();
    assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.database_url(), "sqlite://./latchkey-data/latchkey.db");
    assert!(config.signup_enabled);
    assert_eq!(config.sessions.idle_timeout_secs, 1800);
    assert_eq!(config.tokens.access_ttl_secs, 900);
}

#[test]
fn layers_override_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let file =
        write(&dir, "listen = \"127.0.0.1:7000\"\nsignup_enabled = false\n[tokens]\naudience = \"file\"\n");
    let vars = env(&[
        ("LATCHKEY_LISTEN", "127.0.0.1:7001"),
        ("LATCHKEY_TOKENS__ACCESS_TTL_SECS", "120"),
        ("DATABASE_URL", "postgres://u:p@localhost/db"),
    ]);
    let config = Config::load(Some(&file), &vars, &Overrides::default()).unwrap();
    assert_eq!(config.listen.to_string(), "127.0.0.1:7001");
    assert!(!config.signup_enabled);
    assert_eq!(config.tokens.audience, "file");
    assert_eq!(config.tokens.access_ttl_secs, 120);
    assert_eq!(config.database_url(), "postgres://u:p@localhost/db");
    let flags = Overrides { listen: Some("127.0.0.1:7002".into()), ..Overrides::default() };
    assert_eq!(Config::load(Some(&file), &vars, &flags).unwrap().listen.to_string(), "127.0.0.1:7002");
}

#[test]
fn delivery_settings_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "");
    let vars = env(&[
        ("LATCHKEY_SMS__ALLOWED_COUNTRY_CODES", "1,44"),
        ("LATCHKEY_SMS__PROVIDER", "webhook"),
        ("LATCHKEY_SMS__WEBHOOK_URL", "https://hooks.example/sms"),
        ("LATCHKEY_SMS__WEBHOOK_SECRET", "123456"),
        ("LATCHKEY_EMAIL__SMTP_URL", "smtps://mailer:pw@mail.example"),
    ]);
    let config = Config::load(Some(&file), &vars, &Overrides::default()).unwrap();
    assert_eq!(config.sms.allowed_country_codes, ["1", "44"]);
    assert_eq!(config.sms.provider, SmsProvider::Webhook);
    assert_eq!(config.sms.webhook_secret.as_ref().unwrap().expose_secret(), "123456");
    let shown = config.redacted_toml();
    assert!(!shown.contains(":pw@") && !shown.contains("123456"), "{shown}");
}

#[test]
fn unknown_keys_are_errors_in_file_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "listen = \"127.0.0.1:7000\"\nlisten_port = 1\n");
    let error = Config::load(Some(&file), &env(&[]), &Overrides::default()).unwrap_err().to_string();
    assert!(error.contains("listen_port"), "{error}");
    let file = write(&dir, "[database]\nurl_typo = \"x\"\n");
    assert!(Config::load(Some(&file), &env(&[]), &Overrides::default()).is_err());
    let file = write(&dir, "");
    let vars = env(&[("LATCHKEY_SINGUP_ENABLED", "false")]);
    assert!(Config::load(Some(&file), &vars, &Overrides::default()).is_err());
}

#[test]
fn secrets_come_from_files_and_are_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("mk");
    std::fs::write(&key_path, "ab".repeat(32) + "\n").unwrap();
    let file = write(&dir, "[database]\nurl = \"postgres://app:hunter2@db:5432/latchkey?sslmode=require\"\n");
    let vars = env(&[("LATCHKEY_KEYS__MASTER_KEY_FILE", key_path.to_str().unwrap())]);
    let config = Config::load(Some(&file), &vars, &Overrides::default()).unwrap();
    assert_eq!(config.keys.master_key.as_ref().unwrap().expose_secret(), "ab".repeat(32));
    let shown = config.redacted_toml();
    assert!(!shown.contains("abab"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("master_key = \"[redacted]\""), "{shown}");
    assert!(shown.contains("postgres://app:[redacted]@db:5432/latchkey"), "{shown}");
}

#[test]
fn an_unknown_environment_variable_is_named() {
    let error = Config::load(None, &env(&[("LATCHKEY_SIGNUP_ENABELD", "false")]), &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("LATCHKEY_SIGNUP_ENABELD") && error.contains("names no setting"), "{error}");
    let nested = Config::load(None, &env(&[("LATCHKEY_SMS__PROVDER", "x")]), &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(nested.contains("LATCHKEY_SMS__PROVDER"), "{nested}");
}

#[test]
fn invalid_values_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for text in [
        "public_url = \"ftp://x\"",
        "[database]\nurl = \"mysql://x\"",
        "[tokens]\naccess_ttl_secs = 5",
        "[sessions]\nidle_timeout_secs = 100000",
        "listen = \"not an address\"",
        "[totp]\ndigits = 9",
        "[totp]\nalgorithm = \"MD5\"",
        "[email]\nsmtp_url = \"http://mail\"",
        "[sms]\nprovider = \"webhook\"",
        "[sms]\nprovider = \"twilio\"\ntwilio_account_sid = \"AC1\"",
        "[sms]\nallowed_country_codes = [\"+1234\"]",
        "[magic_link]\nredirect_url = \"javascript:alert(1)\"",
        "[keys]\nmaster_key = \"abcd\"",
        "[cors]\nallowed_origins = [\"https://app.example.com/callback\"]",
        "[cors]\nallowed_origins = [\"https://app.example.com/\"]",
        "[cors]\nallowed_origins = [\"*\"]",
        "[prisme]\nsession_ttl_secs = 60",
        "[mfa]\nself_recovery_wait_secs = -1",
    ] {
        let file = write(&dir, text);
        assert!(Config::load(Some(&file), &env(&[]), &Overrides::default()).is_err(), "{text}");
    }
    let missing = dir.path().join("absent.toml");
    assert!(Config::load(Some(&missing), &env(&[]), &Overrides::default()).is_err());
}

#[test]
fn the_relying_party_defaults_to_the_public_url_and_never_to_an_ip_address() {
    let mut config = Config::default();
    let (rp_id, origins) = config.relying_party().unwrap();
    assert_eq!((rp_id.as_str(), origins[0].as_str()), ("localhost", "http://localhost:8080/"));
    config.public_url = "https://auth.example.com".into();
    let (rp_id, origins) = config.relying_party().unwrap();
    assert_eq!((rp_id.as_str(), origins[0].as_str()), ("auth.example.com", "https://auth.example.com/"));
    config.webauthn.rp_id = Some("10.0.0.1".into());
    assert!(config.relying_party().is_err(), "an IP address is not an RP id");
    config.webauthn.rp_id = Some("example.com".into());
    config.webauthn.origins = vec!["not a url".into()];
    assert!(config.validate().is_err());
}

#[test]
fn an_aaguid_allow_list_needs_direct_attestation_and_the_makers_roots() {
    let mut config = Config::default();
    config.webauthn.allowed_aaguids = vec!["cb69481e-8ff7-4039-93ec-0a2729a154a8".into()];
    assert!(config.validate().is_err(), "an allow-list without attestation checks nothing");
    config.webauthn.attestation = webauthn::Attestation::Direct;
    assert!(config.validate().is_err(), "a self-reported AAGUID is only a claim");
    config.webauthn.attestation_roots = Some("/etc/latchkey/roots.pem".into());
    config.validate().unwrap();
    config.webauthn.allowed_aaguids = vec!["yubikey".into()];
    assert!(config.validate().is_err(), "not a UUID");
}
