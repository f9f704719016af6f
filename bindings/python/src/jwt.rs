//! `fastmcp_auth.JWTIssuer`: fastmcp Python's JWTIssuer over the core's, and the verified payload read straight
//! into Python objects.

use std::fmt;

use fastmcp_auth::jwt::{ClaimLookup, ClaimRef};
use fastmcp_auth::{ClaimLayout, IssueOptions, JwtIssuer, TokenError, TokenUse};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString};
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::{from_json, opt_map, to_py_err};

/// fastmcp Python's JWTIssuer, same signatures, claim layout and errors (`verify_token` raises a JoseError).
#[pyclass(name = "JWTIssuer", module = "fastmcp_auth._native", frozen)]
pub(crate) struct PyJwtIssuer {
    inner: JwtIssuer,
    #[pyo3(get)]
    issuer: String,
    #[pyo3(get)]
    audience: String,
}

#[pymethods]
impl PyJwtIssuer {
    /// `layout` "py" (fastmcp Python's claims, default) or "ts" (fastmcp TS's); `fixed_time` (Unix seconds) pins
    /// "now" for issuing and verifying (tests, vectors).
    #[new]
    #[pyo3(signature = (issuer, audience, signing_key, *, layout="py", fixed_time=None))]
    fn new(
        issuer: String,
        audience: String,
        signing_key: &[u8],
        layout: &str,
        fixed_time: Option<u64>,
    ) -> PyResult<Self> {
        let inner = JwtIssuer::new(&issuer, &audience, signing_key)
            .map_err(to_py_err)?
            .with_layout(ClaimLayout::parse(layout).map_err(to_py_err)?)
            .with_fixed_time(fixed_time);
        Ok(PyJwtIssuer {
            inner,
            issuer,
            audience,
        })
    }

    /// Issues an access token (fastmcp Python layout).
    #[pyo3(signature = (client_id, scopes, jti, expires_in=3600, upstream_claims=None, subject=None, extra_claims=None))]
    #[allow(clippy::too_many_arguments)]
    fn issue_access_token(
        &self,
        client_id: &str,
        scopes: Vec<String>,
        jti: String,
        expires_in: u64,
        upstream_claims: Option<&Bound<'_, PyAny>>,
        subject: Option<String>,
        extra_claims: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let opts = IssueOptions {
            jti: Some(jti),
            expires_in: Some(expires_in),
            subject,
            upstream_claims: opt_map(upstream_claims)?,
            extra_claims: opt_map(extra_claims)?,
            ..Default::default()
        };
        self.inner
            .issue_access_token(client_id, &scopes, opts)
            .map_err(to_py_err)
    }

    /// Issues a refresh token (`token_use: "refresh"`).
    #[pyo3(signature = (client_id, scopes, jti, expires_in, upstream_claims=None))]
    fn issue_refresh_token(
        &self,
        client_id: &str,
        scopes: Vec<String>,
        jti: String,
        expires_in: u64,
        upstream_claims: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let opts = IssueOptions {
            jti: Some(jti),
            expires_in: Some(expires_in),
            upstream_claims: opt_map(upstream_claims)?,
            ..Default::default()
        };
        self.inner
            .issue_refresh_token(client_id, &scopes, opts)
            .map_err(to_py_err)
    }

    /// Verifies without raising, like fastmcp TS's `verify()`: `{"valid", "claims"?, "error"?, "message"?}`, where
    /// `error` is a stable reason (`invalid_signature`, `token_expired`, …) and claims come whenever the signature
    /// was good.
    #[pyo3(signature = (token, expected_token_use="access"))]
    fn verify<'py>(
        &self,
        py: Python<'py>,
        token: &str,
        expected_token_use: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let use_ = TokenUse::parse(expected_token_use).map_err(to_py_err)?;
        from_json(py, &self.inner.verify_detailed(token, use_).to_json())
    }

    /// Verifies a token and returns its claims; raises InvalidTokenError (a joserfc JoseError when joserfc is
    /// installed) otherwise.
    #[pyo3(signature = (token, expected_token_use="access"))]
    fn verify_token<'py>(
        &self,
        py: Python<'py>,
        token: &str,
        expected_token_use: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let use_ = TokenUse::parse(expected_token_use).map_err(to_py_err)?;
        // The signature is checked first; the payload is then read once, straight into Python objects, noting the
        // claims the core checks on the way (no JSON tree, no second parse).
        let claims = self
            .inner
            .verify_with(token, use_, |payload| read_claims(py, payload));
        Ok(claims.map_err(to_py_err)?.dict.into_any())
    }
}

/// A verified payload as a dict, plus the claims verification checks. Read by serde_json's parser, as the core reads
/// payloads (same nesting limit and number rules), so the same payloads are accepted.
struct PyClaims<'py> {
    dict: Bound<'py, PyDict>,
    exp: Option<Checked>,
    nbf: Option<Checked>,
    iss: Option<Checked>,
    aud: Option<Checked>,
    token_use: Option<Checked>,
}

enum Checked {
    Number(f64),
    Str(String),
    Other,
}

impl ClaimLookup for PyClaims<'_> {
    fn claim(&self, name: &str) -> Option<ClaimRef<'_>> {
        let v = match name {
            "exp" => &self.exp,
            "nbf" => &self.nbf,
            "iss" => &self.iss,
            "aud" => &self.aud,
            "token_use" => &self.token_use,
            _ => &None,
        };
        Some(match v.as_ref()? {
            Checked::Number(n) => ClaimRef::Number(*n),
            Checked::Str(s) => ClaimRef::Str(s),
            Checked::Other => ClaimRef::Other,
        })
    }
}

fn read_claims<'py>(py: Python<'py>, payload: &[u8]) -> fastmcp_auth::Result<PyClaims<'py>> {
    let mut de = serde_json::Deserializer::from_slice(payload);
    let claims =
        serde::Deserializer::deserialize_map(&mut de, TopLevel(py)).and_then(|c| de.end().map(|()| c));
    claims.map_err(|_| TokenError::Malformed.into())
}

/// The payload object: every member into the dict, the checked ones also noted; a name given twice is refused (as
/// the core refuses it), found by the dict holding fewer entries than were read.
struct TopLevel<'py>(Python<'py>);

impl<'de, 'py> Visitor<'de> for TopLevel<'py> {
    type Value = PyClaims<'py>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let py = self.0;
        let mut c = PyClaims {
            dict: PyDict::new(py),
            exp: None,
            nbf: None,
            iss: None,
            aud: None,
            token_use: None,
        };
        let mut read = 0usize;
        while let Some((name, slot)) = m.next_key_seed(Name(py))? {
            let v = match slot {
                None => m.next_value_seed(PyValue(py))?,
                Some(slot) => {
                    let (v, checked) = m.next_value_seed(Noted(py))?;
                    *match slot {
                        Slot::Exp => &mut c.exp,
                        Slot::Nbf => &mut c.nbf,
                        Slot::Iss => &mut c.iss,
                        Slot::Aud => &mut c.aud,
                        Slot::TokenUse => &mut c.token_use,
                    } = Some(checked);
                    v
                }
            };
            c.dict.set_item(name, v).map_err(py_err)?;
            read += 1;
        }
        if c.dict.len() != read {
            return Err(serde::de::Error::custom("duplicate claim"));
        }
        Ok(c)
    }
}

#[derive(Clone, Copy)]
enum Slot {
    Exp,
    Nbf,
    Iss,
    Aud,
    TokenUse,
}

/// A member name: the claim names our tokens carry come from interned strings (no allocation, hash cached).
#[derive(Clone, Copy)]
struct Name<'py>(Python<'py>);

impl<'de, 'py> DeserializeSeed<'de> for Name<'py> {
    type Value = (Bound<'py, PyString>, Option<Slot>);
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, 'py> Visitor<'de> for Name<'py> {
    type Value = (Bound<'py, PyString>, Option<Slot>);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let py = self.0;
        let (name, slot) = match v {
            "iss" => (intern!(py, "iss"), Some(Slot::Iss)),
            "aud" => (intern!(py, "aud"), Some(Slot::Aud)),
            "exp" => (intern!(py, "exp"), Some(Slot::Exp)),
            "nbf" => (intern!(py, "nbf"), Some(Slot::Nbf)),
            "token_use" => (intern!(py, "token_use"), Some(Slot::TokenUse)),
            "client_id" => (intern!(py, "client_id"), None),
            "scope" => (intern!(py, "scope"), None),
            "iat" => (intern!(py, "iat"), None),
            "jti" => (intern!(py, "jti"), None),
            "sub" => (intern!(py, "sub"), None),
            "upstream_claims" => (intern!(py, "upstream_claims"), None),
            _ => return Ok((PyString::new(py, v), None)),
        };
        Ok((name.clone(), slot))
    }
}

/// A checked claim's value: the Python object, and what verification needs of it.
struct Noted<'py>(Python<'py>);

impl<'de, 'py> DeserializeSeed<'de> for Noted<'py> {
    type Value = (Bound<'py, PyAny>, Checked);
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, 'py> Visitor<'de> for Noted<'py> {
    type Value = (Bound<'py, PyAny>, Checked);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok((PyValue(self.0).visit_bool(v)?, Checked::Other))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok((PyValue(self.0).visit_i64(v)?, Checked::Number(v as f64)))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok((PyValue(self.0).visit_u64(v)?, Checked::Number(v as f64)))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok((PyValue(self.0).visit_f64(v)?, Checked::Number(v)))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok((PyValue(self.0).visit_str(v)?, Checked::Str(v.to_owned())))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok((PyValue(self.0).visit_unit()?, Checked::Other))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<Self::Value, A::Error> {
        Ok((PyValue(self.0).visit_seq(a)?, Checked::Other))
    }
    fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Self::Value, A::Error> {
        Ok((PyValue(self.0).visit_map(m)?, Checked::Other))
    }
}

/// Builds the Python object for one JSON value.
#[derive(Clone, Copy)]
struct PyValue<'py>(Python<'py>);

impl<'de, 'py> DeserializeSeed<'de> for PyValue<'py> {
    type Value = Bound<'py, PyAny>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

fn py_err<E: serde::de::Error>(_: PyErr) -> E {
    E::custom("building a Python value failed")
}

impl<'de, 'py> Visitor<'de> for PyValue<'py> {
    type Value = Bound<'py, PyAny>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(PyBool::new(self.0, v).to_owned().into_any())
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(PyInt::new(self.0, v).into_any())
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(PyInt::new(self.0, v).into_any())
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(PyFloat::new(self.0, v).into_any())
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(PyString::new(self.0, v).into_any())
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(self.0.None().into_bound(self.0))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
        let l = PyList::empty(self.0);
        while let Some(x) = a.next_element_seed(self)? {
            l.append(x).map_err(py_err)?;
        }
        Ok(l.into_any())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let d = PyDict::new(self.0);
        while let Some((k, _)) = m.next_key_seed(Name(self.0))? {
            let v = m.next_value_seed(self)?;
            d.set_item(k, v).map_err(py_err)?;
        }
        Ok(d.into_any())
    }
}
