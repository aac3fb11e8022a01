//! Request bodies of the management API, parsed strictly (unknown fields are
//! rejected) and validated into domain values, each failure with its own code.

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::clock::Timestamp;
use crate::limits::{Limits, MAX_QUOTA, MAX_RATE, MAX_RATE_WINDOW};
use crate::scope::Scope;

use super::error::ManageError;

/// Largest request body accepted.
pub const MAX_BODY: usize = 16 * 1024;
pub const MAX_NAME: usize = 128;
pub const MAX_SCOPES: usize = 32;
pub const MAX_CIDRS: usize = 32;
pub const MAX_METADATA: usize = 16;
/// Expiry at most this far ahead.
pub const MAX_EXPIRY_SECONDS: i64 = 10 * 366 * 86_400;
pub use crate::model::MAX_ROTATION_DAYS;
/// Rotation grace: default and maximum.
pub const DEFAULT_GRACE_SECONDS: u64 = 86_400;
pub const MAX_GRACE_SECONDS: u64 = 30 * 86_400;

/// `POST /v1/keys`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    #[serde(default, deserialize_with = "present")]
    pub owner: Option<String>,
    pub name: String,
    pub scopes: Vec<String>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub allowed_cidrs: Vec<String>,
    #[serde(default, deserialize_with = "present")]
    pub expires_at: Option<Timestamp>,
    #[serde(default, deserialize_with = "present")]
    pub rotation_days: Option<u32>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub deliver_to_secret: bool,
}

/// `PATCH /v1/keys/{key_id}`: only the fields present change.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    #[serde(default, deserialize_with = "present")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub scopes: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub limits: Option<Limits>,
    #[serde(default, deserialize_with = "present")]
    pub allowed_cidrs: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub expires_at: Option<Timestamp>,
    #[serde(default, deserialize_with = "present")]
    pub rotation_days: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// `POST /v1/keys/{key_id}/rotate`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    #[serde(default, deserialize_with = "present")]
    pub grace_seconds: Option<u64>,
    #[serde(default)]
    pub deliver_to_secret: bool,
}

/// `POST /v1/keys/{key_id}/report-leak`: an empty body, or where the key
/// was seen.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportLeakRequest {
    #[serde(default, deserialize_with = "present")]
    pub source_url: Option<String>,
}

/// Longest source URL kept with a leak report.
pub const MAX_SOURCE_URL: usize = 2048;

/// A reported source URL: `https://`, a host, at most
/// [`MAX_SOURCE_URL`] bytes of printable ASCII without spaces (it is
/// stored, audited and sent on to the owner; the OpenAPI pattern says the
/// same).
pub fn validate_source_url(url: &str) -> Result<(), ManageError> {
    let host = url
        .strip_prefix("https://")
        .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or_default());
    let ok = url.len() <= MAX_SOURCE_URL
        && host.is_some_and(|h| !h.is_empty())
        && url.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(ManageError::invalid(
            "invalid_source_url",
            "source_url",
            format!("source_url must be an https:// URL of at most {MAX_SOURCE_URL} printable ASCII characters"),
        ))
    }
}

/// An optional field that, when present, must hold a value: `null` is a
/// wrong type (400 `invalid_type`), never a silent "absent" (in a PATCH it
/// could be mistaken for "clear this field").
pub(crate) fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// Parse a JSON body strictly; an empty body reads as `{}`.
const DUPLICATE: &str = "duplicate field ";

/// JSON read as a [`serde_json::Value`], refusing an object that names a
/// field twice. RFC 8259 (section 4) only says names "SHOULD be unique", and
/// parsers differ on which value wins, so a proxy or firewall in front of
/// the API could read another owner or scope than the API would.
struct Unique(serde_json::Value);

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Unique(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(serde_json::Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(name) = map.next_key::<String>()? {
            if object.contains_key(&name) {
                return Err(serde::de::Error::custom(format!("{DUPLICATE}{name}")));
            }
            let Unique(value) = map.next_value()?;
            object.insert(name, value);
        }
        Ok(serde_json::Value::Object(object))
    }
}

pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ManageError> {
    if body.len() > MAX_BODY {
        return Err(ManageError::TooLarge(MAX_BODY));
    }
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    let Unique(mut value) = serde_json::from_slice(body).map_err(|e| {
        let msg = e.to_string();
        match msg.strip_prefix(DUPLICATE) {
            Some(rest) => ManageError::Invalid {
                code: "duplicate_field",
                message: format!(
                    "a field appears twice: {}",
                    rest.split(" at ").next().unwrap_or(rest)
                ),
                field: Some(rest.split(" at ").next().unwrap_or(rest).to_owned()),
            },
            None => ManageError::Invalid {
                code: "invalid_json",
                message: "request body is not valid JSON".into(),
                field: None,
            },
        }
    })?;
    if !value.is_object() {
        return Err(ManageError::Invalid {
            code: "invalid_json",
            message: "request body must be a JSON object".into(),
            field: None,
        });
    }
    integral_numbers(&mut value);
    // The path of a value of the wrong type, e.g. `limits.quota.limit`
    // (`serde_path_to_error`; "." for the body itself).
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = (path != ".").then_some(path);
        let e = e.into_inner();
        let msg = e.to_string();
        let quoted = msg.split('`').nth(1).map(str::to_owned);
        use serde_json::error::Category;
        match e.classify() {
            Category::Data if msg.starts_with("unknown field") => ManageError::Invalid {
                code: "unknown_field",
                message: msg.clone(),
                field: quoted,
            },
            Category::Data if msg.starts_with("missing field") => ManageError::Invalid {
                code: "missing_field",
                message: msg.clone(),
                field: quoted,
            },
            Category::Data => ManageError::Invalid {
                code: "invalid_type",
                message: match &path {
                    Some(path) => format!("{path}: {msg}"),
                    None => msg,
                },
                field: path,
            },
            _ => ManageError::Invalid {
                code: "invalid_json",
                message: "request body is not valid JSON".into(),
                field: None,
            },
        }
    })
}

/// JSON has one number type: `170.0` is the integer 170 (JSON Schema's
/// `integer` says so too), so integral numbers written with a fraction or an
/// exponent are read as integers before typed deserialisation.
fn integral_numbers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) if !(n.is_i64() || n.is_u64()) => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0) {
                if f >= 0.0 && f < u64::MAX as f64 {
                    *value = Value::from(f as u64);
                } else if f < 0.0 && f >= i64::MIN as f64 {
                    *value = Value::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers),
        Value::Object(map) => map.values_mut().for_each(integral_numbers),
        _ => {}
    }
}

pub fn validate_owner(owner: &str) -> Result<(), ManageError> {
    let ok = (1..=64).contains(&owner.len())
        && owner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ManageError::invalid(
            "invalid_owner",
            "owner",
            "owner must be 1-64 letters, digits, '-', '_' or '.'",
        ))
    }
}

pub fn validate_name(name: &str) -> Result<(), ManageError> {
    if name.trim().is_empty()
        || name.chars().count() > MAX_NAME
        || name.chars().any(char::is_control)
    {
        return Err(ManageError::invalid(
            "invalid_name",
            "name",
            format!("name must be 1-{MAX_NAME} characters without control characters"),
        ));
    }
    Ok(())
}

pub fn validate_scopes(scopes: &[String]) -> Result<Vec<Scope>, ManageError> {
    if scopes.is_empty() || scopes.len() > MAX_SCOPES {
        return Err(ManageError::invalid(
            "invalid_scope",
            "scopes",
            format!("a key needs 1-{MAX_SCOPES} scopes"),
        ));
    }
    scopes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Scope::parse(s).map_err(|e| {
                ManageError::invalid(
                    "invalid_scope",
                    format!("scopes[{i}]"),
                    format!("{s:?}: {e}"),
                )
            })
        })
        .collect()
}

pub fn validate_limits(limits: &Limits) -> Result<(), ManageError> {
    if let Some(q) = limits.quota {
        if !(1..=MAX_QUOTA).contains(&q.limit) {
            return Err(ManageError::invalid(
                "invalid_limit",
                "limits.quota.limit",
                format!("quota limit must be 1-{MAX_QUOTA}"),
            ));
        }
    }
    if let Some(r) = limits.rate {
        if !(1..=MAX_RATE).contains(&r.limit) {
            return Err(ManageError::invalid(
                "invalid_limit",
                "limits.rate.limit",
                format!("rate limit must be 1-{MAX_RATE}"),
            ));
        }
        if !(1..=MAX_RATE_WINDOW).contains(&r.window) {
            return Err(ManageError::invalid(
                "invalid_limit",
                "limits.rate.window",
                format!("rate window must be 1-{MAX_RATE_WINDOW} seconds"),
            ));
        }
    }
    Ok(())
}

pub fn validate_cidrs(cidrs: &[String]) -> Result<Vec<IpNet>, ManageError> {
    if cidrs.len() > MAX_CIDRS {
        return Err(ManageError::invalid(
            "invalid_cidr",
            "allowed_cidrs",
            format!("at most {MAX_CIDRS} CIDRs"),
        ));
    }
    cidrs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            c.parse::<IpNet>().map(|n| n.trunc()).map_err(|_| {
                ManageError::invalid(
                    "invalid_cidr",
                    format!("allowed_cidrs[{i}]"),
                    format!("{c:?} is not a CIDR such as 203.0.113.0/24"),
                )
            })
        })
        .collect()
}

pub fn validate_expiry(expires_at: Option<Timestamp>, now: Timestamp) -> Result<(), ManageError> {
    match expires_at {
        Some(e) if e <= now => Err(ManageError::invalid(
            "invalid_expiry",
            "expires_at",
            "expires_at must be in the future",
        )),
        Some(e) if e > now + MAX_EXPIRY_SECONDS => Err(ManageError::invalid(
            "invalid_expiry",
            "expires_at",
            "expires_at must be within 10 years",
        )),
        _ => Ok(()),
    }
}

/// Rotation interval: `days` if given and valid, else the deployment's default.
pub fn validate_rotation(days: Option<u32>, default: u32) -> Result<u32, ManageError> {
    match days {
        None => Ok(default),
        Some(d) if d <= MAX_ROTATION_DAYS => Ok(d),
        Some(_) => Err(ManageError::invalid(
            "invalid_rotation",
            "rotation_days",
            format!("rotation_days must be 0 (never) to {MAX_ROTATION_DAYS}"),
        )),
    }
}

pub fn validate_metadata(metadata: &BTreeMap<String, String>) -> Result<(), ManageError> {
    let bad = metadata.len() > MAX_METADATA
        || metadata
            .iter()
            .any(|(k, v)| k.is_empty() || k.len() > 64 || v.len() > 256);
    if bad {
        return Err(ManageError::invalid(
            "invalid_metadata",
            "metadata",
            format!("at most {MAX_METADATA} entries, keys 1-64 and values up to 256 bytes"),
        ));
    }
    Ok(())
}

pub fn validate_grace(grace: Option<u64>) -> Result<u64, ManageError> {
    match grace {
        None => Ok(DEFAULT_GRACE_SECONDS),
        Some(g) if g <= MAX_GRACE_SECONDS => Ok(g),
        Some(_) => Err(ManageError::invalid(
            "invalid_grace",
            "grace_seconds",
            format!("grace_seconds must be 0 to {MAX_GRACE_SECONDS} (30 days)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    /// Found by a new-user review: `["renamed"]` renamed a key (serde reads a
    /// struct from an array), and `{"owner": "a", "owner": "b"}` issued for
    /// `b`. A body is one JSON object, each field once.
    #[test]
    fn only_an_object_with_each_field_once_is_a_body() {
        let e = parse_body::<UpdateRequest>(br#"["renamed"]"#).unwrap_err();
        assert_eq!(e.body()["error"]["code"], "invalid_json", "{e:?}");
        let e = parse_body::<IssueRequest>(
            br#"{"owner": "acme", "owner": "evil", "name": "n", "scopes": ["GET /a"]}"#,
        )
        .unwrap_err();
        assert_eq!(e.body()["error"]["code"], "duplicate_field", "{e:?}");
        assert_eq!(e.body()["error"]["field"], "owner");
        let e = parse_body::<IssueRequest>(
            br#"{"owner": "acme", "name": "n", "scopes": ["GET /a"], "metadata": {"k": "1", "k": "2"}}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.body()["error"]["code"],
            "duplicate_field",
            "nested: {e:?}"
        );
        let ok: IssueRequest =
            parse_body(br#"{"owner": "acme", "name": "n", "scopes": ["GET /a", "GET /a"]}"#)
                .unwrap();
        assert_eq!(ok.owner.as_deref(), Some("acme"));
    }

    #[test]
    fn integral_numbers_with_a_fraction_are_integers() {
        let r: RotateRequest = parse_body(br#"{"grace_seconds": 170.0}"#).unwrap();
        assert_eq!(r.grace_seconds, Some(170));
        let r: RotateRequest = parse_body(br#"{"grace_seconds": 1.7e2}"#).unwrap();
        assert_eq!(r.grace_seconds, Some(170));
        for bad in [
            &br#"{"grace_seconds": 170.5}"#[..],
            br#"{"grace_seconds": -1.0}"#,
            br#"{"grace_seconds": 1e300}"#,
        ] {
            let e = parse_body::<RotateRequest>(bad).unwrap_err();
            assert_eq!(e.body()["error"]["code"], "invalid_type", "{e:?}");
        }
        let e = parse_body::<RotateRequest>(b"{").unwrap_err();
        assert_eq!(e.body()["error"]["code"], "invalid_json");
    }

    #[test]
    fn optional_fields_are_absent_or_a_value_never_null() {
        let r: IssueRequest = parse_body(br#"{"name": "n", "scopes": ["admin"]}"#).unwrap();
        assert_eq!((r.owner, r.expires_at, r.rotation_days), (None, None, None));
        for body in [
            &br#"{"name": "n", "scopes": ["admin"], "expires_at": null}"#[..],
            br#"{"name": "n", "scopes": ["admin"], "owner": null}"#,
            br#"{"name": "n", "scopes": ["admin"], "rotation_days": null}"#,
        ] {
            let e = parse_body::<IssueRequest>(body).unwrap_err();
            assert_eq!(e.body()["error"]["code"], "invalid_type", "{e:?}");
        }
        let e = parse_body::<UpdateRequest>(br#"{"expires_at": null}"#).unwrap_err();
        assert_eq!(e.body()["error"]["code"], "invalid_type");
        let u: UpdateRequest = parse_body(br#"{"name": "m"}"#).unwrap();
        assert_eq!((u.name.as_deref(), u.expires_at), (Some("m"), None));
        let e = parse_body::<RotateRequest>(br#"{"grace_seconds": null}"#).unwrap_err();
        assert_eq!(e.body()["error"]["code"], "invalid_type");
    }

    use super::*;

    /// Before, a value of the wrong type deep in the body (a negative
    /// quota) answered `invalid_type` with no `field`.
    #[test]
    fn a_value_of_the_wrong_type_names_its_path() {
        let e = parse_body::<IssueRequest>(
            br#"{"name":"a","scopes":[],"limits":{"quota":{"limit":-5,"period":"day"}}}"#,
        )
        .unwrap_err();
        assert_eq!(e.code(), "invalid_type");
        assert_eq!(e.body()["error"]["field"], "limits.quota.limit");
        let message = e.body()["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.starts_with("limits.quota.limit: "), "{message}");
        let e = parse_body::<IssueRequest>(br#"{"name":1,"scopes":[]}"#).unwrap_err();
        assert_eq!(e.body()["error"]["field"], "name");
    }

    #[test]
    fn strict_parsing_names_the_problem() {
        let err =
            parse_body::<IssueRequest>(br#"{"name":"a","scopes":[],"admin":true}"#).unwrap_err();
        assert_eq!(err.code(), "unknown_field");
        assert_eq!(err.body()["error"]["field"], "admin");
        assert_eq!(
            parse_body::<IssueRequest>(br#"{"scopes":[]}"#)
                .unwrap_err()
                .code(),
            "missing_field"
        );
        assert_eq!(
            parse_body::<IssueRequest>(b"{").unwrap_err().code(),
            "invalid_json"
        );
        assert_eq!(
            parse_body::<IssueRequest>(br#"{"name":1,"scopes":[]}"#)
                .unwrap_err()
                .code(),
            "invalid_type"
        );
        assert_eq!(
            parse_body::<IssueRequest>(&vec![b' '; MAX_BODY + 1])
                .unwrap_err()
                .status(),
            413
        );
        assert!(parse_body::<RotateRequest>(b"").is_ok());
    }

    #[test]
    fn validation_rules() {
        assert!(validate_owner("acme-1.x_y").is_ok());
        assert!(validate_owner("a/b").is_err());
        assert!(validate_name(" ").is_err());
        assert!(validate_name(&"x".repeat(129)).is_err());
        assert!(validate_scopes(&["GET /a,b".into()]).is_err());
        assert!(validate_cidrs(&["10.0.0.0/33".into()]).is_err());
        assert_eq!(
            validate_cidrs(&["10.1.2.3/8".into()]).unwrap()[0].to_string(),
            "10.0.0.0/8"
        );
        assert!(validate_expiry(Some(10), 10).is_err());
        assert!(validate_expiry(Some(10 + MAX_EXPIRY_SECONDS + 1), 10).is_err());
        assert_eq!(validate_grace(None).unwrap(), DEFAULT_GRACE_SECONDS);
        assert!(validate_grace(Some(MAX_GRACE_SECONDS + 1)).is_err());
        assert!(validate_source_url("https://github.com/o/r/blob/main/.env").is_ok());
        for bad in [
            "http://github.com/o/r",
            "https://",
            "https:///path",
            "https://a b",
            "ftp://x",
            "github.com/o/r",
            "https://h/\u{e9}",
        ] {
            assert!(validate_source_url(bad).is_err(), "{bad}");
        }
        assert!(validate_source_url(&format!("https://x/{}", "a".repeat(MAX_SOURCE_URL))).is_err());
    }
}
