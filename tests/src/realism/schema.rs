//! Key schemas of tables and their global secondary indexes (from
//! `DescribeTable`), and what a request says about keys: an item's primary
//! key, a Query's partition, a read's projected attribute names.

use serde_json::{Map, Value};

use super::units::Item;

/// Which attributes an index holds besides the keys.
#[derive(Debug, Clone, PartialEq)]
pub enum Projection {
    All,
    KeysOnly,
    Include(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Index {
    pub name: String,
    pub hash: String,
    pub range: Option<String>,
    pub projection: Projection,
}

#[derive(Debug, Clone)]
pub struct Schema {
    pub arn: String,
    pub hash: String,
    pub range: Option<String>,
    pub indexes: Vec<Index>,
}

fn keys_of(key_schema: &Value) -> Option<(String, Option<String>)> {
    let mut hash = None;
    let mut range = None;
    for element in key_schema.as_array()? {
        let name = element["AttributeName"].as_str()?.to_owned();
        match element["KeyType"].as_str()? {
            "HASH" => hash = Some(name),
            _ => range = Some(name),
        }
    }
    Some((hash?, range))
}

impl Schema {
    /// From a `DescribeTable` answer.
    pub fn from_description(answer: &Value) -> Option<Self> {
        let table = &answer["Table"];
        let (hash, range) = keys_of(&table["KeySchema"])?;
        let mut indexes = Vec::new();
        for index in table["GlobalSecondaryIndexes"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let (index_hash, index_range) = keys_of(&index["KeySchema"])?;
            let projection = match index["Projection"]["ProjectionType"].as_str() {
                Some("KEYS_ONLY") => Projection::KeysOnly,
                Some("INCLUDE") => Projection::Include(
                    index["Projection"]["NonKeyAttributes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|n| n.as_str().map(str::to_owned))
                        .collect(),
                ),
                _ => Projection::All,
            };
            indexes.push(Index {
                name: index["IndexName"].as_str()?.to_owned(),
                hash: index_hash,
                range: index_range,
                projection,
            });
        }
        Some(Self {
            arn: table["TableArn"].as_str().unwrap_or_default().to_owned(),
            hash,
            range,
            indexes,
        })
    }

    pub fn index(&self, name: &str) -> Option<&Index> {
        self.indexes.iter().find(|i| i.name == name)
    }

    /// The primary key of `item` (or of a `Key`), if it has one.
    pub fn key_of(&self, item: &Item) -> Option<Item> {
        let mut key = Map::new();
        for name in std::iter::once(&self.hash).chain(self.range.as_ref()) {
            key.insert(name.clone(), item.get(name)?.clone());
        }
        Some(key)
    }

    /// A primary key as canonical text (the same for the same key).
    pub fn key_id(&self, item: &Item) -> Option<String> {
        let hash = item.get(&self.hash)?;
        let range = self.range.as_ref().and_then(|r| item.get(r));
        Some(serde_json::json!([hash, range]).to_string())
    }

    /// The table's partition key value of `item`, as text.
    pub fn partition_of(&self, item: &Item) -> Option<String> {
        item.get(&self.hash).map(key_text)
    }

    /// The attributes an index query answers with when it names none.
    pub fn index_attributes(&self, index: &Index) -> Option<Vec<String>> {
        let mut names = vec![self.hash.clone(), index.hash.clone()];
        names.extend(self.range.iter().chain(index.range.iter()).cloned());
        match &index.projection {
            Projection::All => return None,
            Projection::KeysOnly => {}
            Projection::Include(more) => names.extend(more.iter().cloned()),
        }
        Some(names)
    }
}

/// A key attribute value as text: a string or number as written, binary as
/// its base64.
pub fn key_text(value: &Value) -> String {
    value
        .as_object()
        .and_then(|m| m.values().next())
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn resolve<'a>(token: &'a str, names: &'a Value) -> &'a str {
    if token.starts_with('#') {
        names[token].as_str().unwrap_or(token)
    } else {
        token
    }
}

/// The top-level attribute names a read projects onto (`ProjectionExpression`
/// with its `#name` placeholders, or the legacy `AttributesToGet`), `None`
/// when it asks for whole items.
pub fn projected_names(request: &Value) -> Option<Vec<String>> {
    if let Some(expression) = request["ProjectionExpression"].as_str() {
        let names = &request["ExpressionAttributeNames"];
        return Some(
            expression
                .split(',')
                .map(|path| {
                    let top = path.trim().split(['.', '[']).next().unwrap_or_default();
                    resolve(top.trim(), names).to_owned()
                })
                .collect(),
        );
    }
    let legacy = request["AttributesToGet"].as_array()?;
    Some(
        legacy
            .iter()
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect(),
    )
}

/// `image` reduced to the attributes in `names` (all of it for `None`).
pub fn project(image: &Item, names: Option<&[String]>) -> Item {
    match names {
        None => image.clone(),
        Some(names) => image
            .iter()
            .filter(|(k, _)| names.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// The value a Query's key condition requires of attribute `hash`.
pub fn query_partition(request: &Value, hash: &str) -> Option<Value> {
    if let Some(expression) = request["KeyConditionExpression"].as_str() {
        let names = &request["ExpressionAttributeNames"];
        let values = &request["ExpressionAttributeValues"];
        let upper = expression.to_ascii_uppercase();
        let mut clauses = Vec::new();
        let mut start = 0;
        while let Some(at) = upper[start..].find(" AND ") {
            clauses.push(&expression[start..start + at]);
            start += at + 5;
        }
        clauses.push(&expression[start..]);
        for clause in clauses {
            let Some((left, right)) = clause.split_once('=') else {
                continue;
            };
            let left = left.trim().trim_start_matches('(').trim();
            let right = right.trim().trim_end_matches(')').trim();
            for (name, value) in [(left, right), (right, left)] {
                if resolve(name, names) == hash && value.starts_with(':') {
                    return values.get(value).cloned();
                }
            }
        }
        return None;
    }
    let condition = &request["KeyConditions"][hash];
    (condition["ComparisonOperator"] == "EQ").then(|| condition["AttributeValueList"][0].clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn query_partitions_come_from_the_key_condition() {
        let q = json!({"KeyConditionExpression": "#p = :p AND begins_with(sk, :s)",
            "ExpressionAttributeNames": {"#p": "gpk"},
            "ExpressionAttributeValues": {":p": {"S": "OWNER#a"}, ":s": {"S": "x"}}});
        assert_eq!(query_partition(&q, "gpk"), Some(json!({"S": "OWNER#a"})));
        let q = json!({"KeyConditionExpression": "(sk BETWEEN :a and :b) and pk=:v",
            "ExpressionAttributeValues": {":v": {"N": "1"}}});
        assert_eq!(query_partition(&q, "pk"), Some(json!({"N": "1"})));
        let legacy = json!({"KeyConditions": {"pk": {"ComparisonOperator": "EQ",
            "AttributeValueList": [{"S": "k"}]}}});
        assert_eq!(query_partition(&legacy, "pk"), Some(json!({"S": "k"})));
    }

    #[test]
    fn projections_resolve_placeholders_to_top_level_names() {
        let r = json!({"ProjectionExpression": "#a, b.c, d[0]", "ExpressionAttributeNames": {"#a": "used"}});
        assert_eq!(
            projected_names(&r),
            Some(vec!["used".to_owned(), "b".to_owned(), "d".to_owned()])
        );
        assert_eq!(projected_names(&json!({})), None);
    }
}
