//! Reading a token's payload: the full parse (duplicate member names refused) and the subset parse of the claims
//! verification checks (`exp`, `nbf`, `iss`, `aud`, `token_use`), borrowing its strings, with the same verdicts.

use std::fmt;

use serde_json::{Map, Value};

use super::Claims;
use crate::error::{Result, TokenError};

/// Parses a JSON object, rejecting duplicate member names (a classic parser-confusion vector).
pub(super) fn parse_object(bytes: &[u8]) -> Result<Claims> {
    let v: NoDupObject = serde_json::from_slice(bytes).map_err(|_| TokenError::Malformed)?;
    Ok(v.0)
}

/// A JSON object whose member names are all distinct (also used for Client ID Metadata Documents).
pub(crate) struct NoDupObject(Claims);

impl<'de> serde::Deserialize<'de> for NoDupObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = NoDupObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<NoDupObject, A::Error> {
                let mut out = Map::new();
                while let Some((k, v)) = m.next_entry::<String, Value>()? {
                    if out.insert(k, v).is_some() {
                        return Err(serde::de::Error::custom("duplicate claim"));
                    }
                }
                Ok(NoDupObject(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A claim as verification sees it: a number, a string, or anything else.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ClaimRef<'a> {
    /// A JSON number.
    Number(f64),
    /// A JSON string.
    Str(&'a str),
    /// Any other JSON value.
    Other,
}

/// Read access to the claims verification checks: `exp`, `nbf`, `iss`, `aud` and `token_use` (see
/// [`JwtIssuer::verify_with`]).
pub trait ClaimLookup {
    /// The claim called `name`, if the payload has it.
    fn claim(&self, name: &str) -> Option<ClaimRef<'_>>;
}

impl ClaimLookup for Claims {
    fn claim(&self, name: &str) -> Option<ClaimRef<'_>> {
        Some(match Map::get(self, name)? {
            Value::Number(n) => n.as_f64().map_or(ClaimRef::Other, ClaimRef::Number),
            Value::String(s) => ClaimRef::Str(s),
            _ => ClaimRef::Other,
        })
    }
}

/// A JSON value read and dropped, with the full parser's verdicts: a number out of `f64` range (`1e400`) is an
/// error here as it is for `verify` (serde's `IgnoredAny` only checks the syntax), so every face agrees.
pub(super) struct Skip;

impl<'de> serde::Deserialize<'de> for Skip {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::{MapAccess, SeqAccess};
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Skip;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_u64<E>(self, _: u64) -> std::result::Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_i64<E>(self, _: i64) -> std::result::Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_f64<E>(self, _: f64) -> std::result::Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_str<E>(self, _: &str) -> std::result::Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_bool<E>(self, _: bool) -> std::result::Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_unit<E>(self) -> std::result::Result<Skip, E> {
                Ok(Skip)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> std::result::Result<Skip, A::Error> {
                while a.next_element::<Skip>()?.is_some() {}
                Ok(Skip)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> std::result::Result<Skip, A::Error> {
                while a.next_entry::<Skip, Skip>()?.is_some() {}
                Ok(Skip)
            }
        }
        d.deserialize_any(V)
    }
}

/// One checked claim's value, borrowed from the payload when it holds no escapes.
pub(super) enum CheckedValue<'a> {
    Number(f64),
    Str(std::borrow::Cow<'a, str>),
    Other,
}

impl<'de> serde::Deserialize<'de> for CheckedValue<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::{MapAccess, SeqAccess};
        use std::borrow::Cow;
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = CheckedValue<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_u64<E>(self, v: u64) -> std::result::Result<Self::Value, E> {
                Ok(CheckedValue::Number(v as f64))
            }
            fn visit_i64<E>(self, v: i64) -> std::result::Result<Self::Value, E> {
                Ok(CheckedValue::Number(v as f64))
            }
            fn visit_f64<E>(self, v: f64) -> std::result::Result<Self::Value, E> {
                Ok(CheckedValue::Number(v))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Self::Value, E> {
                Ok(CheckedValue::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Self::Value, E> {
                Ok(CheckedValue::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_bool<E>(self, _: bool) -> std::result::Result<Self::Value, E> {
                Ok(CheckedValue::Other)
            }
            fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
                Ok(CheckedValue::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> std::result::Result<Self::Value, A::Error> {
                while a.next_element::<Skip>()?.is_some() {}
                Ok(CheckedValue::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> std::result::Result<Self::Value, A::Error> {
                while a.next_entry::<Skip, Skip>()?.is_some() {}
                Ok(CheckedValue::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// Just the claims [`JwtIssuer::check_claims`] reads.
#[derive(Default)]
pub(super) struct CheckedClaims<'a> {
    exp: Option<CheckedValue<'a>>,
    nbf: Option<CheckedValue<'a>>,
    iss: Option<CheckedValue<'a>>,
    aud: Option<CheckedValue<'a>>,
    token_use: Option<CheckedValue<'a>>,
}

impl ClaimLookup for CheckedClaims<'_> {
    fn claim(&self, name: &str) -> Option<ClaimRef<'_>> {
        let v = match name {
            "exp" => self.exp.as_ref(),
            "nbf" => self.nbf.as_ref(),
            "iss" => self.iss.as_ref(),
            "aud" => self.aud.as_ref(),
            "token_use" => self.token_use.as_ref(),
            _ => None,
        }?;
        Some(match v {
            CheckedValue::Number(n) => ClaimRef::Number(*n),
            CheckedValue::Str(s) => ClaimRef::Str(s),
            CheckedValue::Other => ClaimRef::Other,
        })
    }
}

/// The claims [`JwtIssuer::check_claims`] reads, parsed out of a payload object without building the other values;
/// a duplicate claim name or a payload that is not a JSON object is refused, as by [`parse_object`].
pub(super) fn parse_checked_claims(bytes: &[u8]) -> Result<CheckedClaims<'_>> {
    use std::borrow::Cow;
    use std::collections::HashSet;

    struct Name<'a>(Cow<'a, str>);
    impl<'de> serde::Deserialize<'de> for Name<'de> {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Name<'de>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a claim name")
                }
                fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Name<'de>, E> {
                    Ok(Name(Cow::Borrowed(v)))
                }
                fn visit_str<E>(self, v: &str) -> std::result::Result<Name<'de>, E> {
                    Ok(Name(Cow::Owned(v.to_owned())))
                }
            }
            d.deserialize_str(V)
        }
    }

    struct Checked<'a>(CheckedClaims<'a>);
    impl<'de> serde::Deserialize<'de> for Checked<'de> {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Checked<'de>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut m: A,
                ) -> std::result::Result<Checked<'de>, A::Error> {
                    let mut out = CheckedClaims::default();
                    // Duplicate names: a linear scan while the payload is small (every real token), a hash set
                    // beyond that, so a hostile payload with thousands of names stays linear.
                    let mut few: Vec<Cow<'de, str>> = Vec::with_capacity(16);
                    let mut many: HashSet<Cow<'de, str>> = HashSet::new();
                    while let Some(Name(k)) = m.next_key::<Name<'de>>()? {
                        let slot = match &*k {
                            "exp" => Some(&mut out.exp),
                            "nbf" => Some(&mut out.nbf),
                            "iss" => Some(&mut out.iss),
                            "aud" => Some(&mut out.aud),
                            "token_use" => Some(&mut out.token_use),
                            _ => None,
                        };
                        match slot {
                            Some(slot) => *slot = Some(m.next_value::<CheckedValue<'de>>()?),
                            None => {
                                m.next_value::<Skip>()?;
                            }
                        }
                        let duplicate = if many.is_empty() && few.len() < 32 {
                            let d = few.contains(&k);
                            few.push(k);
                            d
                        } else {
                            many.extend(few.drain(..));
                            !many.insert(k)
                        };
                        if duplicate {
                            return Err(serde::de::Error::custom("duplicate claim"));
                        }
                    }
                    Ok(Checked(out))
                }
            }
            d.deserialize_map(V)
        }
    }

    let v: Checked<'_> = serde_json::from_slice(bytes).map_err(|_| TokenError::Malformed)?;
    Ok(v.0)
}
