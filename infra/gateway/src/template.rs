//! The HTTP API as `template.yaml` defines it: the routes (each function's
//! `HttpApi` events), the authorizer in front of them, and the stage.
//!
//! This is the only route table: a function or route added to the template
//! is served by the next gateway start, with no change here. The template's
//! CloudFormation short tags (`!Ref`, `!GetAtt`, `!Sub`) are read as YAML tags;
//! only the few references the API needs are resolved (parameter defaults,
//! `!GetAtt Function.Arn`).

use serde_norway::{Mapping, Value};

use crate::routes::{Method, Pattern, Route, RouteError, RouteTable};

/// Why the template could not be read as an HTTP API.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template is not valid YAML")]
    Yaml(#[from] serde_norway::Error),
    #[error("template has no Resources")]
    NoResources,
    #[error("template has no AWS::Serverless::HttpApi (or several: name one)")]
    NoApi,
    #[error("route {route}: {source}")]
    Route {
        route: String,
        #[source]
        source: RouteError,
    },
    #[error("{0}")]
    Unsupported(String),
}

/// The Lambda authorizer of the API (payload format 2.0 only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizerSpec {
    /// Its name in the API's `Auth.Authorizers`.
    pub name: String,
    /// The function to invoke (its binary name under `cargo lambda watch`).
    pub function: String,
    /// `EnableSimpleResponses`: `{isAuthorized, context}` rather than an IAM policy.
    pub simple_responses: bool,
    /// Identity sources: request headers (lower-case) and query parameters
    /// that must all be present, or API Gateway answers 401 without invoking
    /// the authorizer. Empty: the authorizer sees every request.
    pub identity_headers: Vec<String>,
    pub identity_queries: Vec<String>,
}

/// Everything the gateway serves.
#[derive(Debug, Clone)]
pub struct ApiSpec {
    /// Stage name (`$default` when the template names none).
    pub stage: String,
    pub routes: RouteTable,
    /// Authorizers by name (routes refer to them).
    pub authorizers: Vec<AuthorizerSpec>,
}

impl ApiSpec {
    pub fn authorizer(&self, name: &str) -> Option<&AuthorizerSpec> {
        self.authorizers.iter().find(|a| a.name == name)
    }

    /// Every function the API invokes (authorizers first), once each.
    pub fn functions(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let names = self
            .authorizers
            .iter()
            .map(|a| a.function.clone())
            .chain(self.routes.routes().iter().map(|r| r.function.clone()));
        for name in names {
            if !out.contains(&name) {
                out.push(name);
            }
        }
        out
    }

    /// Read the API from the template's text. `api` names the
    /// `AWS::Serverless::HttpApi` resource when the template has several.
    pub fn from_template(text: &str, api: Option<&str>) -> Result<Self, TemplateError> {
        let doc: Value = serde_norway::from_str(text)?;
        let resources = doc
            .get("Resources")
            .and_then(Value::as_mapping)
            .ok_or(TemplateError::NoResources)?;
        let params = doc.get("Parameters").and_then(Value::as_mapping);
        let apis: Vec<(&str, &Value)> = resources
            .iter()
            .filter(|(_, r)| {
                r.get("Type").and_then(Value::as_str) == Some("AWS::Serverless::HttpApi")
            })
            .filter_map(|(k, r)| Some((k.as_str()?, r)))
            .filter(|(k, _)| api.is_none_or(|a| a == *k))
            .collect();
        let [(api_name, api_res)] = apis[..] else {
            return Err(TemplateError::NoApi);
        };
        let props = api_res.get("Properties").cloned().unwrap_or(Value::Null);
        let stage = props
            .get("StageName")
            .and_then(|v| resolve(v, params))
            .unwrap_or_else(|| "$default".into());
        let auth = props.get("Auth");
        let default_authorizer = auth
            .and_then(|a| a.get("DefaultAuthorizer"))
            .and_then(|v| resolve(v, params));
        let mut authorizers = Vec::new();
        if let Some(map) = auth
            .and_then(|a| a.get("Authorizers"))
            .and_then(Value::as_mapping)
        {
            for (name, spec) in map {
                let name = name.as_str().unwrap_or_default().to_owned();
                authorizers.push(authorizer(&name, spec, resources)?);
            }
        }

        let mut routes = Vec::new();
        for (logical, res) in resources {
            if res.get("Type").and_then(Value::as_str) != Some("AWS::Serverless::Function") {
                continue;
            }
            let logical = logical.as_str().unwrap_or_default();
            let Some(events) = res
                .get("Properties")
                .and_then(|p| p.get("Events"))
                .and_then(Value::as_mapping)
            else {
                continue;
            };
            for (_, event) in events {
                if event.get("Type").and_then(Value::as_str) != Some("HttpApi") {
                    continue;
                }
                let ep = event.get("Properties").cloned().unwrap_or(Value::Null);
                // Routes of another API (or of the implicit one) are not ours.
                let api_id = ep.get("ApiId").and_then(reference);
                if api_id.as_deref() != Some(api_name) {
                    continue;
                }
                let method_text = ep
                    .get("Method")
                    .and_then(|v| resolve(v, params))
                    .unwrap_or_else(|| "ANY".into());
                let path_text = ep
                    .get("Path")
                    .and_then(|v| resolve(v, params))
                    .unwrap_or_else(|| "/".into());
                let key = format!("{method_text} {path_text}");
                let wrap = |source| TemplateError::Route {
                    route: key.clone(),
                    source,
                };
                let method = Method::parse(&method_text).map_err(wrap)?;
                let pattern = Pattern::parse(&path_text).map_err(wrap)?;
                let route_auth = ep
                    .get("Auth")
                    .and_then(|a| a.get("Authorizer"))
                    .and_then(|v| resolve(v, params));
                let authorizer = match route_auth.as_deref() {
                    Some("NONE") => None,
                    Some(name) => Some(name.to_owned()),
                    None => default_authorizer.clone(),
                };
                if let Some(name) = &authorizer {
                    if !authorizers.iter().any(|a| &a.name == name) {
                        return Err(TemplateError::Unsupported(format!(
                            "route {key} uses authorizer {name}, which is not a Lambda authorizer of {api_name}"
                        )));
                    }
                }
                routes.push(Route {
                    method,
                    pattern,
                    function: binary(logical, res),
                    authorizer,
                });
            }
        }
        Ok(Self {
            stage,
            routes: RouteTable::new(routes),
            authorizers,
        })
    }
}

/// Every function of the template (its binary), in template order: the API's
/// and the others (a scheduled one, say), so all can run locally.
pub fn all_functions(text: &str) -> Result<Vec<String>, TemplateError> {
    let doc: Value = serde_norway::from_str(text)?;
    let resources = doc
        .get("Resources")
        .and_then(Value::as_mapping)
        .ok_or(TemplateError::NoResources)?;
    Ok(resources
        .iter()
        .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some("AWS::Serverless::Function"))
        .map(|(k, r)| binary(k.as_str().unwrap_or_default(), r))
        .collect())
}

fn authorizer(
    name: &str,
    spec: &Value,
    resources: &Mapping,
) -> Result<AuthorizerSpec, TemplateError> {
    let unsupported = |what: &str| TemplateError::Unsupported(format!("authorizer {name}: {what}"));
    let arn = spec
        .get("FunctionArn")
        .ok_or_else(|| unsupported("only Lambda authorizers (FunctionArn) are served locally"))?;
    let function = get_att_resource(arn).ok_or_else(|| {
        unsupported("FunctionArn must be !GetAtt <Function>.Arn of this template")
    })?;
    let res = resources
        .get(function.as_str())
        .ok_or_else(|| unsupported("its function is not in the template"))?;
    let version = spec
        .get("AuthorizerPayloadFormatVersion")
        .map(|v| match v {
            Value::Number(n) => n.to_string(),
            other => other.as_str().unwrap_or_default().to_owned(),
        })
        .unwrap_or_default();
    if version != "2.0" && version != "2" {
        return Err(unsupported("only payload format 2.0 is served locally"));
    }
    let identity = spec.get("Identity");
    let names = |field: &str| -> Vec<String> {
        identity
            .and_then(|i| i.get(field))
            .and_then(Value::as_sequence)
            .map(|s| {
                s.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(AuthorizerSpec {
        name: name.to_owned(),
        function: binary(&function, res),
        simple_responses: spec
            .get("EnableSimpleResponses")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        identity_headers: names("Headers")
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        identity_queries: names("QueryStrings"),
    })
}

/// The function's binary (what `cargo lambda watch` calls it): its
/// `Metadata.BuildProperties.Binary`, else the logical id.
fn binary(logical: &str, res: &Value) -> String {
    res.get("Metadata")
        .and_then(|m| m.get("BuildProperties"))
        .and_then(|b| b.get("Binary"))
        .and_then(Value::as_str)
        .unwrap_or(logical)
        .to_owned()
}

/// The tag name of a short-form intrinsic (`!Ref` is `Ref`), or the key of
/// a one-entry long-form mapping (`{Ref: x}`), with its argument.
fn intrinsic(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(t) => Some((
            t.tag.to_string().trim_start_matches('!').to_owned(),
            &t.value,
        )),
        Value::Mapping(m) if m.len() == 1 => {
            let (k, v) = m.iter().next()?;
            let k = k.as_str()?;
            let k = k.strip_prefix("Fn::").unwrap_or(k);
            Some((k.to_owned(), v))
        }
        _ => None,
    }
}

/// `!Ref Name` -> `Name`.
fn reference(v: &Value) -> Option<String> {
    match intrinsic(v)? {
        (tag, Value::String(name)) if tag == "Ref" => Some(name.clone()),
        _ => None,
    }
}

/// `!GetAtt Fn.Arn` (or `[Fn, Arn]`) -> `Fn`.
fn get_att_resource(v: &Value) -> Option<String> {
    let (tag, arg) = intrinsic(v)?;
    if tag != "GetAtt" {
        return None;
    }
    match arg {
        Value::String(s) => s.strip_suffix(".Arn").map(str::to_owned),
        Value::Sequence(s) if s.len() == 2 && s[1].as_str() == Some("Arn") => {
            s[0].as_str().map(str::to_owned)
        }
        _ => None,
    }
}

/// A literal, or `!Ref Parameter` resolved to the parameter's default.
fn resolve(v: &Value, params: Option<&Mapping>) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        other => {
            let name = reference(other)?;
            let default = params?.get(name.as_str())?.get("Default")?;
            resolve(default, None)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An API with an authorizer, a route behind it (`GET /items/{id}`), an
    /// open one (`GET /health`, `Authorizer: NONE`) and a greedy one.
    pub(crate) const TEMPLATE: &str = r#"
Parameters:
  Stage: { Type: String, Default: prod }
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      StageName: !Ref Stage
      Auth:
        DefaultAuthorizer: Keys
        Authorizers:
          Keys:
            FunctionArn: !GetAtt AuthFn.Arn
            AuthorizerPayloadFormatVersion: "2.0"
            EnableSimpleResponses: true
            Identity:
              Headers: [Authorization]
  Other:
    Type: AWS::Serverless::Api
  AuthFn:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: authorizer } }
  ItemsFn:
    Type: AWS::Serverless::Function
    Metadata: { BuildProperties: { Binary: items } }
    Properties:
      Environment: { Variables: { X: !Sub "${AWS::StackName}-x" } }
      Events:
        Get: { Type: HttpApi, Properties: { ApiId: !Ref Api, Method: GET, Path: "/items/{id}" } }
        Health: { Type: HttpApi, Properties: { ApiId: !Ref Api, Method: get, Path: /health, Auth: { Authorizer: NONE } } }
        Elsewhere: { Type: HttpApi, Properties: { Method: GET, Path: /implicit } }
        Timer: { Type: Schedule, Properties: { Schedule: rate(1 hour) } }
  ProxyFn:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        All: { Type: HttpApi, Properties: { ApiId: { Ref: Api }, Method: ANY, Path: "/files/{proxy+}" } }
"#;

    #[test]
    fn reads_routes_authorizer_and_stage() {
        let api = ApiSpec::from_template(TEMPLATE, None).unwrap();
        assert_eq!(api.stage, "prod");
        assert_eq!(
            api.authorizers,
            vec![AuthorizerSpec {
                name: "Keys".into(),
                function: "authorizer".into(),
                simple_responses: true,
                identity_headers: vec!["authorization".into()],
                identity_queries: vec![],
            }]
        );
        let keys: Vec<String> = api.routes.routes().iter().map(Route::key).collect();
        assert_eq!(
            keys,
            ["GET /items/{id}", "GET /health", "ANY /files/{proxy+}"]
        );
        let r = api.routes.routes();
        assert_eq!(r[0].function, "items");
        assert_eq!(r[0].authorizer.as_deref(), Some("Keys"));
        assert_eq!(r[1].authorizer, None);
        assert_eq!(r[2].function, "ProxyFn");
        assert_eq!(api.functions(), ["authorizer", "items", "ProxyFn"]);
        assert_eq!(
            all_functions(TEMPLATE).unwrap(),
            ["authorizer", "items", "ProxyFn"]
        );
    }

    #[test]
    fn the_project_template_is_served() {
        let text = include_str!("../../../template.yaml");
        let api = ApiSpec::from_template(text, None).unwrap();
        assert_eq!(api.stage, "prod");
        let auth = &api.authorizers[0];
        assert_eq!(auth.function, "authorizer");
        assert!(auth.simple_responses);
        let keys: Vec<String> = api.routes.routes().iter().map(Route::key).collect();
        for expected in [
            "POST /v1/keys",
            "GET /v1/keys/{key_id}",
            "POST /v1/keys/{key_id}/revoke",
            "GET /v1/whoami",
        ] {
            assert!(
                keys.iter().any(|k| k == expected),
                "{expected} missing from {keys:?}"
            );
        }
        assert!(all_functions(text)
            .unwrap()
            .contains(&"rotation".to_owned()));
        // Every route is behind the authorizer but GitHub's leak reports
        // (`Auth: {Authorizer: NONE}`: GitHub signs them, it holds no key)
        // and the developer portal's pages (a session cookie, not a key).
        let open_routes = [
            "POST /v1/leaks/github",
            "ANY /portal",
            "ANY /portal/{proxy+}",
        ];
        for route in api.routes.routes() {
            let open = open_routes.contains(&route.key().as_str());
            assert_eq!(
                route.authorizer.as_deref(),
                (!open).then_some(auth.name.as_str()),
                "{}",
                route.key()
            );
        }
        let page = api.routes.find("GET", "/portal/home").unwrap();
        assert_eq!(
            (page.route.function.as_str(), &page.route.authorizer),
            ("portal", &None)
        );
        let sessions = api.routes.find("POST", "/v1/portal/sessions").unwrap();
        assert_eq!(sessions.route.function, "portal");
        let leaks = api.routes.find("POST", "/v1/leaks/github").unwrap();
        assert_eq!(
            (leaks.route.function.as_str(), &leaks.route.authorizer),
            ("leaks", &None)
        );
    }

    #[test]
    fn unsupported_templates_are_refused_with_a_reason() {
        assert!(matches!(
            ApiSpec::from_template("a: [", None),
            Err(TemplateError::Yaml(_))
        ));
        assert!(matches!(
            ApiSpec::from_template("Resources: {}", None),
            Err(TemplateError::NoApi)
        ));
        let v1 = TEMPLATE.replace(
            "AuthorizerPayloadFormatVersion: \"2.0\"",
            "AuthorizerPayloadFormatVersion: \"1.0\"",
        );
        assert!(matches!(
            ApiSpec::from_template(&v1, None),
            Err(TemplateError::Unsupported(_))
        ));
        let bad = TEMPLATE.replace("/items/{id}", "/items/{id");
        assert!(matches!(
            ApiSpec::from_template(&bad, None),
            Err(TemplateError::Route { .. })
        ));
    }
}
