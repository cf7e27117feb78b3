//! The request's `values`, assembled on the client as helm assembles them: `-f` files merged in
//! order (nested maps merged, anything else replaced), then every `--set`, then every
//! `--set-string`, each parsed with helm's `strvals` rules (helm's `pkg/cli/values` and
//! `pkg/strvals`).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// helm's limits: the largest list index and the deepest dotted name a `--set` may use.
const MAX_INDEX: i64 = 65536;
const MAX_NESTING: usize = 30;

#[derive(Debug, thiserror::Error)]
pub enum ValuesError {
    #[error("cannot read values file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("values file {path} is not valid YAML: {source}")]
    Yaml {
        path: PathBuf,
        source: serde_yaml_ng::Error,
    },
    #[error("values file {path} must hold a map at the top level")]
    NotAMap { path: PathBuf },
    #[error("{flag} {expression:?}: {message}")]
    Set {
        flag: &'static str,
        expression: String,
        message: String,
    },
}

/// How a `--set` value is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTyping {
    /// `--set`: `true`, `false`, `null` and integers become JSON booleans, null and numbers.
    Inferred,
    /// `--set-string`: every value stays a string.
    Strings,
}

/// What to merge into `values`, in helm's order.
#[derive(Debug, Default)]
pub struct ValueSources<'a> {
    pub files: &'a [PathBuf],
    pub sets: &'a [String],
    pub set_strings: &'a [String],
}

impl ValueSources<'_> {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.sets.is_empty() && self.set_strings.is_empty()
    }

    /// The merged values.
    pub fn assemble(&self) -> Result<Map<String, Value>, ValuesError> {
        let mut values = Map::new();
        for path in self.files {
            merge_maps(&mut values, read_values_file(path)?);
        }
        for (flag, typing, expressions) in [
            ("--set", SetTyping::Inferred, self.sets),
            ("--set-string", SetTyping::Strings, self.set_strings),
        ] {
            for expression in expressions {
                parse_set_into(expression, typing, &mut values).map_err(|message| {
                    ValuesError::Set {
                        flag,
                        expression: expression.clone(),
                        message,
                    }
                })?;
            }
        }
        Ok(values)
    }
}

/// A YAML values file (`-` reads stdin) as JSON: keys become strings and merge keys (`<<`) are
/// applied, as helm's YAML-to-JSON conversion does; an empty file is an empty map.
pub fn read_values_file(path: &Path) -> Result<Map<String, Value>, ValuesError> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|source| ValuesError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text).map_err(|source| ValuesError::Yaml {
            path: path.to_owned(),
            source,
        })?;
    yaml.apply_merge().map_err(|source| ValuesError::Yaml {
        path: path.to_owned(),
        source,
    })?;
    match yaml_to_json(yaml) {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        _ => Err(ValuesError::NotAMap {
            path: path.to_owned(),
        }),
    }
}

fn yaml_to_json(yaml: serde_yaml_ng::Value) -> Value {
    use serde_yaml_ng::Value as Yaml;
    match yaml {
        Yaml::Null => Value::Null,
        Yaml::Bool(value) => Value::Bool(value),
        Yaml::Number(number) => {
            if let Some(integer) = number.as_i64() {
                Value::from(integer)
            } else if let Some(integer) = number.as_u64() {
                Value::from(integer)
            } else {
                number
                    .as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::Null, Value::Number)
            }
        }
        Yaml::String(text) => Value::String(text),
        Yaml::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
        Yaml::Mapping(mapping) => Value::Object(
            mapping
                .into_iter()
                .map(|(key, value)| (yaml_key(key), yaml_to_json(value)))
                .collect(),
        ),
        Yaml::Tagged(tagged) => yaml_to_json(tagged.value),
    }
}

/// A map key as JSON text: `1: a` has the key `"1"`, `true: a` the key `"true"`.
fn yaml_key(key: serde_yaml_ng::Value) -> String {
    match yaml_to_json(key) {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

/// helm's merge of values files: maps merge key by key, anything else in `overlay` replaces.
pub fn merge_maps(base: &mut Map<String, Value>, overlay: Map<String, Value>) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(Value::Object(existing)), Value::Object(inner)) => merge_maps(existing, inner),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Parses one `--set` expression (`a.b=1,list[0]=x,tags={a,b}`) into `dest`, as helm's
/// `strvals.ParseInto` does; the error says what is wrong.
pub fn parse_set_into(
    expression: &str,
    typing: SetTyping,
    dest: &mut Map<String, Value>,
) -> Result<(), String> {
    let mut parser = SetParser {
        chars: expression.chars().collect(),
        position: 0,
        typing,
    };
    while parser.key(dest, 0)? == Flow::More {}
    Ok(())
}

/// Whether parsing goes on after a step (helm signals the end of input with `io.EOF`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    More,
    End,
}

struct SetParser {
    chars: Vec<char>,
    position: usize,
    typing: SetTyping,
}

impl SetParser {
    fn next_char(&mut self) -> Option<char> {
        let next = self.chars.get(self.position).copied();
        self.position += usize::from(next.is_some());
        next
    }

    /// The text up to the first unescaped `stop` character (consumed and returned), or up to the
    /// end (`None`). A backslash takes the next character literally.
    fn until(&mut self, stop: &[char]) -> (String, Option<char>) {
        let mut text = String::new();
        while let Some(c) = self.next_char() {
            if stop.contains(&c) {
                return (text, Some(c));
            }
            if c == '\\' {
                match self.next_char() {
                    Some(escaped) => text.push(escaped),
                    None => return (text, None),
                }
            } else {
                text.push(c);
            }
        }
        (text, None)
    }

    fn typed(&self, text: String) -> Value {
        if self.typing == SetTyping::Strings {
            return Value::String(text);
        }
        match text.to_ascii_lowercase().as_str() {
            "true" => return Value::Bool(true),
            "false" => return Value::Bool(false),
            "null" => return Value::Null,
            "0" => return Value::from(0),
            _ => {}
        }
        // Leading zeros keep a value a string (`007`), as do floats and anything else.
        if !text.starts_with('0')
            && let Ok(integer) = text.parse::<i64>()
        {
            return Value::from(integer);
        }
        Value::String(text)
    }

    fn key(&mut self, data: &mut Map<String, Value>, nesting: usize) -> Result<Flow, String> {
        let (key, last) = self.until(&['=', '[', ',', '.']);
        match last {
            None if key.is_empty() => Ok(Flow::End),
            None => Err(format!("key {key:?} has no value")),
            Some(',') => Err(format!("key {key:?} has no value (cannot end with ,)")),
            Some('=') => {
                let value = self.value()?;
                set(data, key, value);
                Ok(Flow::More)
            }
            Some('[') => {
                let index = self.index()?;
                let list = match data.remove(&key) {
                    None => Vec::new(),
                    Some(Value::Array(list)) => list,
                    Some(other) => return Err(not_a(&key, "list", &other)),
                };
                let (list, flow) = self.list_item(list, index, nesting)?;
                set(data, key, Value::Array(list));
                Ok(flow)
            }
            Some(_dot) => {
                let nesting = nesting + 1;
                if nesting > MAX_NESTING {
                    return Err(format!(
                        "value name nested level is greater than maximum supported nested level of {MAX_NESTING}"
                    ));
                }
                let existing = match data.remove(&key) {
                    None => None,
                    Some(Value::Object(inner)) => Some(inner),
                    Some(other) => return Err(not_a(&key, "map", &other)),
                };
                let existed = existing.is_some();
                let mut inner = existing.unwrap_or_default();
                let flow = self.key(&mut inner, nesting)?;
                if flow == Flow::More && inner.is_empty() {
                    return Err(format!("key map {key:?} has no value"));
                }
                if existed || !inner.is_empty() {
                    set(data, key, Value::Object(inner));
                }
                Ok(flow)
            }
        }
    }

    /// The index between `[` and `]`.
    fn index(&mut self) -> Result<i64, String> {
        let (text, last) = self.until(&[']']);
        if last.is_none() {
            return Err(format!("error parsing index: unterminated [{text}"));
        }
        text.parse::<i64>()
            .map_err(|_| format!("error parsing index: {text:?} is not an integer"))
    }

    /// What follows `name[index]`: `=value`, `.key...` or another `[index]`.
    fn list_item(
        &mut self,
        mut list: Vec<Value>,
        index: i64,
        nesting: usize,
    ) -> Result<(Vec<Value>, Flow), String> {
        if index < 0 {
            return Err(format!("negative {index} index not allowed"));
        }
        let (rest, last) = self.until(&['[', '.', '=']);
        if !rest.is_empty() {
            return Err(format!("unexpected data at end of array index: {rest:?}"));
        }
        match last {
            None => Ok((list, Flow::End)),
            Some('=') => {
                let value = self.value()?;
                set_index(&mut list, index, value)?;
                Ok((list, Flow::More))
            }
            Some('[') => {
                let next = self.index()?;
                let inner = match list.get_mut(index as usize).map(std::mem::take) {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(inner)) => inner,
                    Some(other) => return Err(not_a(&format!("[{index}]"), "list", &other)),
                };
                let (inner, flow) = self.list_item(inner, next, nesting)?;
                set_index(&mut list, index, Value::Array(inner))?;
                Ok((list, flow))
            }
            Some(_dot) => {
                // An item that is not a map yet (indices given out of order) becomes one.
                let mut inner = match list.get_mut(index as usize).map(std::mem::take) {
                    Some(Value::Object(inner)) => inner,
                    _ => Map::new(),
                };
                let flow = self.key(&mut inner, nesting)?;
                if flow == Flow::More || !inner.is_empty() {
                    set_index(&mut list, index, Value::Object(inner))?;
                }
                Ok((list, flow))
            }
        }
    }

    /// The value after `=`: a `{a,b}` list, or a scalar up to the next `,`; nothing at all is `""`.
    fn value(&mut self) -> Result<Value, String> {
        match self.chars.get(self.position) {
            None => return Ok(Value::String(String::new())),
            Some('{') => self.position += 1,
            Some(_) => {
                let (text, _) = self.until(&[',']);
                return Ok(self.typed(text));
            }
        }
        let mut items = Vec::new();
        loop {
            match self.until(&[',', '}']) {
                (text, Some(',')) => items.push(self.typed(text)),
                (text, Some(_closing)) => {
                    items.push(self.typed(text));
                    if self.chars.get(self.position) == Some(&',') {
                        self.position += 1;
                    }
                    return Ok(Value::Array(items));
                }
                (_, None) => return Err("list must terminate with '}'".to_owned()),
            }
        }
    }
}

fn set(data: &mut Map<String, Value>, key: String, value: Value) {
    // helm ignores empty keys (`=x`, `.a=1`).
    if !key.is_empty() {
        data.insert(key, value);
    }
}

fn set_index(list: &mut Vec<Value>, index: i64, value: Value) -> Result<(), String> {
    if index > MAX_INDEX {
        return Err(format!(
            "index of {index} is greater than maximum supported index of {MAX_INDEX}"
        ));
    }
    let index = index as usize;
    if list.len() <= index {
        list.resize(index + 1, Value::Null);
    }
    list[index] = value;
    Ok(())
}

fn not_a(key: &str, wanted: &str, found: &Value) -> String {
    let found = match found {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    };
    format!("key {key:?} is not a {wanted}: it holds {found}")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn set(expressions: &[&str]) -> Result<Value, String> {
        let mut values = Map::new();
        for expression in expressions {
            parse_set_into(expression, SetTyping::Inferred, &mut values)?;
        }
        Ok(Value::Object(values))
    }

    #[test]
    fn set_infers_types_as_helm_does() {
        assert_eq!(
            set(&["a=x,b=true,c=FALSE,d=null,e=0,f=42,g=-7,h=007,i=1.5,j=,k=1e3"]).unwrap(),
            json!({"a": "x", "b": true, "c": false, "d": null, "e": 0, "f": 42, "g": -7,
                   "h": "007", "i": "1.5", "j": "", "k": "1e3"})
        );
        let mut strings = Map::new();
        parse_set_into("tag=1234,on=true", SetTyping::Strings, &mut strings).unwrap();
        assert_eq!(Value::Object(strings), json!({"tag": "1234", "on": "true"}));
    }

    #[test]
    fn set_builds_nested_maps_and_lists() {
        assert_eq!(
            set(&["image.repository=web,image.tag=v2"]).unwrap(),
            json!({"image": {"repository": "web", "tag": "v2"}})
        );
        assert_eq!(
            set(&["ports[0].name=http,ports[0].port=80,ports[2].port=443"]).unwrap(),
            json!({"ports": [{"name": "http", "port": 80}, null, {"port": 443}]})
        );
        assert_eq!(
            set(&["matrix[0][1]=x"]).unwrap(),
            json!({"matrix": [[null, "x"]]})
        );
        assert_eq!(
            set(&["hosts={a.example,b.example,3},after=1"]).unwrap(),
            json!({"hosts": ["a.example", "b.example", 3], "after": 1})
        );
        assert_eq!(
            set(&[r"note=a\,b,dotted\.key=1,path=c:\\d"]).unwrap(),
            json!({"note": "a,b", "dotted.key": 1, "path": "c:\\d"})
        );
    }

    #[test]
    fn later_sets_merge_into_earlier_ones() {
        assert_eq!(
            set(&["image.tag=v1", "image.repository=web", "image.tag=v2"]).unwrap(),
            json!({"image": {"repository": "web", "tag": "v2"}})
        );
        assert_eq!(
            set(&["list[0]=a", "list[1]=b"]).unwrap(),
            json!({"list": ["a", "b"]})
        );
    }

    #[test]
    fn malformed_sets_are_refused_with_helms_words() {
        for (expression, error) in [
            ("name", "key \"name\" has no value"),
            (
                "name,other=1",
                "key \"name\" has no value (cannot end with ,)",
            ),
            ("list[-1]=x", "negative -1 index not allowed"),
            (
                "list[65537]=x",
                "index of 65537 is greater than maximum supported index of 65536",
            ),
            ("list[x]=1", "error parsing index: \"x\" is not an integer"),
            ("list[0]x=1", "unexpected data at end of array index: \"x\""),
            ("tags={a,b", "list must terminate with '}'"),
            ("a.=1", "key map \"a\" has no value"),
        ] {
            assert_eq!(set(&[expression]).unwrap_err(), error, "{expression}");
        }
        assert_eq!(
            set(&["a=1", "a.b=2"]).unwrap_err(),
            "key \"a\" is not a map: it holds a number"
        );
        let deep = format!("{}=1", vec!["k"; 32].join("."));
        assert!(set(&[&deep]).unwrap_err().contains("nested level"));
    }

    #[test]
    fn files_merge_in_order_then_sets_apply() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.yaml");
        let prod = dir.path().join("prod.yaml");
        std::fs::write(
            &base,
            "replicas: 1\nimage: {repository: web, tag: v1}\nresources: &r {cpu: 1}\nlimits:\n  <<: *r\n  memory: 2Gi\n1: one\n",
        )
        .unwrap();
        std::fs::write(&prod, "replicas: 3\nimage: {tag: v2}\n").unwrap();
        let values = ValueSources {
            files: &[base, prod],
            sets: &["image.tag=v3".to_owned()],
            set_strings: &["build=0042".to_owned()],
        }
        .assemble()
        .unwrap();
        assert_eq!(
            Value::Object(values),
            json!({
                "replicas": 3,
                "image": {"repository": "web", "tag": "v3"},
                "resources": {"cpu": 1},
                "limits": {"cpu": 1, "memory": "2Gi"},
                "1": "one",
                "build": "0042",
            })
        );
    }

    #[test]
    fn a_values_file_must_be_a_map_and_may_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.yaml");
        let list = dir.path().join("list.yaml");
        std::fs::write(&empty, "# nothing yet\n").unwrap();
        std::fs::write(&list, "- a\n- b\n").unwrap();
        assert_eq!(read_values_file(&empty).unwrap(), Map::new());
        assert!(matches!(
            read_values_file(&list),
            Err(ValuesError::NotAMap { .. })
        ));
        assert!(matches!(
            read_values_file(&dir.path().join("missing.yaml")),
            Err(ValuesError::Read { .. })
        ));
    }
}
