//! Argument validation with TrueNAS's answers: the middleware validates positional `params`
//! against a pydantic model and reports every problem as a `ValidationErrors` entry whose
//! attribute is the pydantic location joined by dots and whose message is pydantic's
//! (`api/base/handler/accept.py`). Models forbid unknown fields.

use super::rpc::{Invalid, RpcError};
use serde_json::{Map, Value};

/// The positional parameters of one call, named as the method's argument model names them.
pub struct Args<'a> {
    params: &'a [Value],
    names: &'static [&'static str],
    errors: Vec<Invalid>,
}

impl<'a> Args<'a> {
    /// Checks the count ("Too many arguments (expected N, found M)" under attribute "").
    pub fn new(params: &'a [Value], names: &'static [&'static str]) -> Result<Self, RpcError> {
        if params.len() > names.len() {
            return Err(RpcError::invalid(
                "",
                format!(
                    "Too many arguments (expected {}, found {})",
                    names.len(),
                    params.len()
                ),
            ));
        }
        Ok(Args {
            params,
            names,
            errors: Vec::new(),
        })
    }

    fn get(&self, index: usize) -> (&'static str, Option<&'a Value>) {
        (
            self.names.get(index).copied().unwrap_or(""),
            self.params.get(index),
        )
    }

    /// A required string argument.
    pub fn string(&mut self, index: usize) -> Option<String> {
        let (name, value) = self.get(index);
        match value {
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => self.fail(name, "Input should be a valid string"),
            None => self.fail(name, "Field required"),
        }
    }

    /// A required integer argument.
    pub fn integer(&mut self, index: usize) -> Option<i64> {
        let (name, value) = self.get(index);
        match value {
            Some(v) => integer(v).or_else(|| self.fail(name, INTEGER)),
            None => self.fail(name, "Field required"),
        }
    }

    /// An object argument (`model` names its pydantic model in the message, `dict` for a
    /// plain dictionary); `None` when absent and `optional`.
    pub fn object(&mut self, index: usize, model: &str, optional: bool) -> Option<Obj<'a>> {
        let (name, value) = self.get(index);
        match value {
            Some(Value::Object(map)) => Some(Obj {
                path: name.to_owned(),
                map,
            }),
            Some(_) if model == "dict" => self.fail(name, "Input should be a valid dictionary"),
            Some(_) => self.fail(
                name,
                &format!("Input should be a valid dictionary or instance of {model}"),
            ),
            None if optional => None,
            None => self.fail(name, "Field required"),
        }
    }

    /// A list argument; `None` when absent.
    pub fn list(&mut self, index: usize) -> Option<&'a Vec<Value>> {
        let (name, value) = self.get(index);
        match value {
            Some(Value::Array(a)) => Some(a),
            Some(_) => self.fail(name, "Input should be a valid list"),
            None => None,
        }
    }

    fn fail<T>(&mut self, attribute: &str, message: &str) -> Option<T> {
        self.errors.push(Invalid::new(attribute, message));
        None
    }

    /// Adds the errors found in an object argument.
    pub fn absorb(&mut self, obj_errors: Vec<Invalid>) {
        self.errors.extend(obj_errors);
    }

    /// Every error found, or none.
    pub fn finish(self) -> Result<(), RpcError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(RpcError::Validation(self.errors))
        }
    }
}

const INTEGER: &str = "Input should be a valid integer";

fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        _ => None,
    }
}

/// An object argument being read field by field; unknown fields are reported by
/// [`Obj::finish`].
pub struct Obj<'a> {
    path: String,
    map: &'a Map<String, Value>,
}

/// The fields of an object read so far, and the errors found.
pub struct Fields<'a> {
    obj: Obj<'a>,
    seen: Vec<&'static str>,
    /// Errors so far.
    pub errors: Vec<Invalid>,
}

impl<'a> Obj<'a> {
    /// The object as it was sent.
    pub fn map(&self) -> &'a Map<String, Value> {
        self.map
    }

    /// Starts reading.
    pub fn fields(self) -> Fields<'a> {
        Fields {
            obj: self,
            seen: Vec::new(),
            errors: Vec::new(),
        }
    }
}

impl<'a> Fields<'a> {
    fn attribute(&self, key: &str) -> String {
        if self.obj.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.obj.path)
        }
    }

    fn fail<T>(&mut self, key: &str, message: impl Into<String>) -> Option<T> {
        let attribute = self.attribute(key);
        self.errors.push(Invalid::new(attribute, message));
        None
    }

    fn take(&mut self, key: &'static str) -> Option<&'a Value> {
        self.seen.push(key);
        self.obj.map.get(key)
    }

    /// An optional integer within `min..=max` (either bound optional).
    pub fn int(&mut self, key: &'static str, min: Option<i64>, max: Option<i64>) -> Option<i64> {
        let value = self.take(key)?;
        let Some(n) = integer(value) else {
            return self.fail(key, INTEGER);
        };
        if let Some(min) = min
            && n < min
        {
            return self.fail(
                key,
                format!("Input should be greater than or equal to {min}"),
            );
        }
        if let Some(max) = max
            && n > max
        {
            return self.fail(key, format!("Input should be less than or equal to {max}"));
        }
        Some(n)
    }

    /// An optional boolean.
    pub fn bool(&mut self, key: &'static str) -> Option<bool> {
        match self.take(key)? {
            Value::Bool(b) => Some(*b),
            _ => self.fail(key, "Input should be a valid boolean"),
        }
    }

    /// An optional string (`null` allowed when `nullable`: then `Some(None)`).
    pub fn string(&mut self, key: &'static str, nullable: bool) -> Option<Option<String>> {
        match self.take(key)? {
            Value::String(s) => Some(Some(s.clone())),
            Value::Null if nullable => Some(None),
            _ => self.fail(key, "Input should be a valid string"),
        }
    }

    /// A required string.
    pub fn required_string(&mut self, key: &'static str) -> Option<String> {
        if !self.obj.map.contains_key(key) {
            self.seen.push(key);
            return self.fail(key, "Field required");
        }
        self.string(key, false).flatten()
    }

    /// An optional value passed through as it is (checked by the core).
    pub fn raw(&mut self, key: &'static str) -> Option<&'a Value> {
        self.take(key)
    }

    /// An optional nested object.
    pub fn object(&mut self, key: &'static str, model: &str) -> Option<Obj<'a>> {
        match self.take(key)? {
            Value::Object(map) => Some(Obj {
                path: self.attribute(key),
                map,
            }),
            _ => self.fail(
                key,
                format!("Input should be a valid dictionary or instance of {model}"),
            ),
        }
    }

    /// Reports the fields not read ("Extra inputs are not permitted") and returns every
    /// error found.
    pub fn finish(mut self) -> Vec<Invalid> {
        let extra: Vec<String> = self
            .obj
            .map
            .keys()
            .filter(|k| !self.seen.contains(&k.as_str()))
            .cloned()
            .collect();
        for key in extra {
            let attribute = self.attribute(&key);
            self.errors
                .push(Invalid::new(attribute, "Extra inputs are not permitted"));
        }
        self.errors
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn pydantic_messages_and_locations() {
        let params = vec![
            json!("alice"),
            json!({"otp_digits": 5, "interval": 4, "x": 1}),
        ];
        let mut args = Args::new(&params, &["username", "twofactor_options"]).unwrap();
        assert_eq!(args.string(0).as_deref(), Some("alice"));
        let mut f = args.object(1, "TwofactorOptions", false).unwrap().fields();
        assert_eq!(f.int("otp_digits", Some(6), Some(8)), None);
        assert_eq!(f.int("interval", Some(5), None), None);
        let errors = f.finish();
        args.absorb(errors);
        let Err(RpcError::Validation(errors)) = args.finish() else {
            panic!("expected validation errors")
        };
        let got: Vec<(String, String)> = errors
            .into_iter()
            .map(|e| (e.attribute, e.message))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "twofactor_options.otp_digits".into(),
                    "Input should be greater than or equal to 6".into()
                ),
                (
                    "twofactor_options.interval".into(),
                    "Input should be greater than or equal to 5".into()
                ),
                (
                    "twofactor_options.x".into(),
                    "Extra inputs are not permitted".into()
                ),
            ]
        );
        assert!(Args::new(&[json!(1), json!(2), json!(3)], &["a", "b"]).is_err());
    }
}
