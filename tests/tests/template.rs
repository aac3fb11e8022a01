//! The SAM template's promises that a reader cannot check by eye: each
//! function's IAM policy allows exactly the actions its code uses (the store
//! traits it depends on), on named resources, never `*`.

use std::collections::{BTreeMap, BTreeSet};

use serde_norway::Value;

fn template() -> Value {
    serde_norway::from_str(keygate::table::TEMPLATE).expect("template.yaml is YAML")
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Tagged(t) => text(&t.value),
        _ => None,
    }
}

fn list(v: &Value) -> Vec<Value> {
    match v {
        Value::Sequence(s) => s.clone(),
        other => vec![other.clone()],
    }
}

/// Function logical id -> the actions its policies allow.
fn function_actions() -> BTreeMap<String, BTreeSet<String>> {
    let doc = template();
    let mut out = BTreeMap::new();
    for (name, res) in doc["Resources"].as_mapping().unwrap() {
        if res["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let mut actions = BTreeSet::new();
        // No `Policies` at all: the function may call no AWS service.
        let policies = match &res["Properties"]["Policies"] {
            Value::Null => vec![],
            other => list(other),
        };
        for policy in policies {
            for statement in list(&policy["Statement"]) {
                assert_eq!(statement["Effect"].as_str(), Some("Allow"));
                for resource in list(&statement["Resource"]) {
                    let r = text(&resource).or_else(|| {
                        // !GetAtt KeysTable.Arn
                        match &resource {
                            Value::Tagged(t) => t.value.as_str().map(str::to_owned),
                            _ => None,
                        }
                    });
                    let r = r.unwrap_or_else(|| panic!("{name:?}: unreadable resource"));
                    assert!(
                        r != "*" && !r.ends_with(":*"),
                        "{name:?}: wildcard resource {r}"
                    );
                }
                for action in list(&statement["Action"]) {
                    let a = text(&action).unwrap();
                    assert!(!a.contains('*'), "{name:?}: wildcard action {a}");
                    actions.insert(a);
                }
            }
        }
        out.insert(name.as_str().unwrap().to_owned(), actions);
    }
    out
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn each_function_is_allowed_exactly_what_it_uses() {
    let actions = function_actions();
    // The authorizer uses KeyLookup (GetItem) and Admission (UpdateItem;
    // growing a hot allowance: BatchGetItem and PutItem, on allowance items
    // only).
    assert_eq!(
        actions["AuthorizerFunction"],
        set(&[
            "dynamodb:GetItem",
            "dynamodb:UpdateItem",
            "dynamodb:BatchGetItem",
            "dynamodb:PutItem",
        ])
    );
    // The management API uses KeyAdmin (GetItem; transactions of Put and
    // Update; Query on the owner index), PlanAdmin (also a ConditionCheck of
    // a plan's version and the Delete of a plan member item), SecretSink
    // (create and put), and for manual leak reports LeakStore (BatchGetItem)
    // and the notifier.
    assert_eq!(
        actions["KeysFunction"],
        set(&[
            "dynamodb:GetItem",
            "dynamodb:BatchGetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:ConditionCheckItem",
            "dynamodb:Query",
            "secretsmanager:CreateSecret",
            "secretsmanager:PutSecretValue",
            "secretsmanager:DescribeSecret",
            "secretsmanager:UpdateSecretVersionStage",
            "events:PutEvents",
        ])
    );
    // The leak receiver: LeakStore (BatchGetItem; transactions of Put and
    // Update) and the owner's notice.
    assert_eq!(
        actions["LeaksFunction"],
        set(&[
            "dynamodb:BatchGetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "events:PutEvents",
        ])
    );
    // The sample protected route reads only its request: no AWS access.
    assert_eq!(actions["EchoFunction"], set(&[]));
    // Rotation: KeyAdmin + KeyLookup (GetItem, Put/Update in transactions,
    // Query on the due index), the two-phase SecretSink (stage, promote,
    // read a staged version back), and its failure destination.
    assert_eq!(
        actions["RotationFunction"],
        set(&[
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:Query",
            "secretsmanager:CreateSecret",
            "secretsmanager:PutSecretValue",
            "secretsmanager:DescribeSecret",
            "secretsmanager:UpdateSecretVersionStage",
            "secretsmanager:GetSecretValue",
            "sqs:SendMessage",
        ])
    );
    // Usage routes: UsageStore reads (allowances in batches, history by
    // owner and key) and KeyAdmin reads (a key by id, an owner's keys).
    let reads = [
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:Query",
    ];
    assert_eq!(actions["UsageFunction"], set(&reads));
    // The daily report adds writes of history, reports and the removal of
    // archived counters.
    let mut report = set(&reads);
    report.extend(set(&[
        "dynamodb:PutItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:UpdateItem",
    ]));
    assert_eq!(actions["UsageReportFunction"], report);
    // The portal: KeyAdmin as the keys function (no leak reports, no
    // Secrets Manager), UsageStore reads, and PortalStore (Put, Get and
    // conditional Delete of links and sessions; Query to revoke them).
    assert_eq!(
        actions["PortalFunction"],
        set(&[
            "dynamodb:GetItem",
            "dynamodb:BatchGetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:Query",
        ])
    );
}

/// The portal deletes nothing but its own links and sessions.
#[test]
fn the_portal_deletes_only_links_and_sessions() {
    let (actions, leading) = leading_keys("PortalFunction", "dynamodb:DeleteItem");
    assert_eq!(actions, 1, "DeleteItem stands alone");
    assert_eq!(leading, set(&["PLINK#*", "PSESS#*"]));
}

/// The management API deletes nothing but plan member items (a moved
/// owner's entry in its old plan's partition).
#[test]
fn the_management_api_deletes_only_plan_members() {
    let (actions, leading) = leading_keys("KeysFunction", "dynamodb:DeleteItem");
    assert_eq!(actions, 1, "DeleteItem stands alone");
    assert_eq!(leading, set(&["PLANSUB#*"]));
}

/// The statement of `function`'s policy that allows `action`: how many
/// actions it allows, and the partition-key patterns its
/// `dynamodb:LeadingKeys` condition admits.
fn leading_keys(function: &str, action: &str) -> (usize, BTreeSet<String>) {
    let doc = template();
    let statements = list(&doc["Resources"][function]["Properties"]["Policies"][0]["Statement"]);
    let statement = statements
        .iter()
        .find(|s| {
            list(&s["Action"])
                .iter()
                .any(|a| text(a).as_deref() == Some(action))
        })
        .unwrap_or_else(|| panic!("{function}: no statement allows {action}"));
    let leading = list(&statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"])
        .iter()
        .filter_map(text)
        .collect();
    (list(&statement["Action"]).len(), leading)
}

#[test]
fn the_report_job_writes_only_usage_partitions() {
    let (_, leading) = leading_keys("UsageReportFunction", "dynamodb:PutItem");
    assert_eq!(leading, set(&["UOWN#*", "RPT#*", "ALW#*"]));
}

#[test]
fn every_function_has_a_log_group_with_retention() {
    let doc = template();
    let resources = doc["Resources"].as_mapping().unwrap();
    for name in function_actions().keys() {
        let group = resources
            .iter()
            .find(|(_, r)| {
                r["Type"].as_str() == Some("AWS::Logs::LogGroup")
                    && text(&r["Properties"]["LogGroupName"])
                        .is_some_and(|n| n.contains(&format!("${{{name}}}")))
            })
            .unwrap_or_else(|| panic!("{name} has no log group"));
        assert!(!group.1["Properties"]["RetentionInDays"].is_null());
    }
}

/// The logical id a `!Ref` names, if `v` is one.
fn reference(v: &Value) -> Option<&str> {
    match v {
        Value::Tagged(t) if t.tag == "Ref" => t.value.as_str(),
        _ => None,
    }
}

/// `!If [HasAlarmTopic, [!Ref AlarmTopicArn], !Ref AWS::NoValue]`: notify
/// the topic when one is given, and have no actions otherwise.
fn notifies_the_topic_if_given(v: &Value) -> bool {
    let Value::Tagged(t) = v else { return false };
    let Some(args) = t.value.as_sequence() else {
        return false;
    };
    t.tag == "If"
        && args.len() == 3
        && args[0].as_str() == Some("HasAlarmTopic")
        && args[1]
            .as_sequence()
            .is_some_and(|s| s.len() == 1 && reference(&s[0]) == Some("AlarmTopicArn"))
        && reference(&args[2]) == Some("AWS::NoValue")
}

#[test]
fn authorizer_failures_and_table_throttling_raise_alarms() {
    let doc = template();
    let resources = doc["Resources"].as_mapping().unwrap();
    let alarms: Vec<&Value> = resources
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::CloudWatch::Alarm"))
        .map(|r| &r["Properties"])
        .collect();
    let (lambda, dynamodb) = ("AWS/Lambda", "AWS/DynamoDB");
    let authorizer = ("FunctionName", "AuthorizerFunction");
    let table = ("TableName", "KeysTable");
    let expected = [
        (lambda, "Errors", authorizer),
        (lambda, "Throttles", authorizer),
        (dynamodb, "WriteThrottleEvents", table),
        (dynamodb, "ReadThrottleEvents", table),
    ];
    for (namespace, metric, (dimension, target)) in expected {
        let alarm = alarms
            .iter()
            .find(|a| {
                a["Namespace"].as_str() == Some(namespace)
                    && a["MetricName"].as_str() == Some(metric)
            })
            .unwrap_or_else(|| panic!("no alarm on {namespace} {metric}"));
        // Exactly one dimension, naming our own function or table: an alarm
        // without it would watch the whole account's metric.
        let dimensions = alarm["Dimensions"].as_sequence().unwrap();
        assert_eq!(dimensions.len(), 1, "{metric}: {dimensions:?}");
        assert_eq!(dimensions[0]["Name"].as_str(), Some(dimension));
        assert_eq!(reference(&dimensions[0]["Value"]), Some(target), "{metric}");
        assert!(
            resources.contains_key(target),
            "{target} is not in the template"
        );
        // Any single failure or throttle in a period fires it.
        assert_eq!(alarm["Statistic"].as_str(), Some("Sum"));
        assert_eq!(alarm["Threshold"].as_u64(), Some(1));
        assert_eq!(
            alarm["ComparisonOperator"].as_str(),
            Some("GreaterThanOrEqualToThreshold")
        );
        assert_eq!(alarm["TreatMissingData"].as_str(), Some("notBreaching"));
        for actions in ["AlarmActions", "OKActions"] {
            assert!(
                notifies_the_topic_if_given(&alarm[actions]),
                "{metric} {actions}: {:?}",
                alarm[actions]
            );
        }
    }
}

#[test]
fn the_alarm_topic_is_optional() {
    let doc = template();
    let parameter = &doc["Parameters"]["AlarmTopicArn"];
    assert_eq!(parameter["Default"].as_str(), Some(""));
    // HasAlarmTopic: !Not [!Equals [!Ref AlarmTopicArn, ""]]
    let Value::Tagged(not) = &doc["Conditions"]["HasAlarmTopic"] else {
        panic!("HasAlarmTopic is not a condition function")
    };
    assert!(not.tag == "Not");
    let Value::Tagged(equals) = &not.value.as_sequence().unwrap()[0] else {
        panic!("HasAlarmTopic does not compare the parameter")
    };
    assert!(equals.tag == "Equals");
    let args = equals.value.as_sequence().unwrap();
    assert_eq!(reference(&args[0]), Some("AlarmTopicArn"));
    assert_eq!(args[1].as_str(), Some(""));
}

/// Owner notices go to the account's default event bus and nowhere else,
/// and only the leak receiver and the developer portal's pages (which check
/// a signature and a session cookie themselves) are outside the key
/// authorizer; opening a portal session is behind it.
#[test]
fn leak_notices_use_the_default_bus_and_only_leak_and_portal_routes_skip_the_authorizer() {
    let doc = template();
    let default_bus =
        "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default";
    for (name, res) in doc["Resources"].as_mapping().unwrap() {
        for policy in list(&res["Properties"]["Policies"]) {
            for statement in list(&policy["Statement"]) {
                let puts = list(&statement["Action"])
                    .iter()
                    .any(|a| text(a).as_deref() == Some("events:PutEvents"));
                if puts {
                    let resources: Vec<String> = list(&statement["Resource"])
                        .iter()
                        .filter_map(text)
                        .collect();
                    assert_eq!(resources, vec![default_bus.to_owned()], "{name:?}");
                }
            }
        }
        let events = res["Properties"]["Events"].as_mapping();
        for (event, ev) in events.into_iter().flatten() {
            if ev["Type"].as_str() != Some("HttpApi") {
                continue;
            }
            let open = ev["Properties"]["Auth"]["Authorizer"].as_str() == Some("NONE");
            let route = (
                ev["Properties"]["Method"].as_str(),
                ev["Properties"]["Path"].as_str(),
            );
            let unauthorized = [
                (Some("POST"), Some("/v1/leaks/github")),
                (Some("ANY"), Some("/portal")),
                (Some("ANY"), Some("/portal/{proxy+}")),
            ];
            assert_eq!(open, unauthorized.contains(&route), "{name:?} {event:?}");
        }
    }
    for function in ["KeysFunction", "LeaksFunction"] {
        let env = &doc["Resources"][function]["Properties"]["Environment"]["Variables"];
        assert_eq!(
            reference(&env["KEYGATE_LEAK_POLICY"]),
            Some("LeakPolicy"),
            "{function}"
        );
    }
}
