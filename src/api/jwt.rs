//! Bearer tokens checked as API Gateway's JWT authorizer checks them, for the local server.
//!
//! On Lambda, API Gateway verifies the token before the function runs and the handler reads
//! the identity it established ([`super::auth::Caller::of`]). Locally there is no API Gateway,
//! so `XRAY_AUTH=jwt` with `XRAY_JWT_ISSUER`, `XRAY_JWT_AUDIENCE` and `XRAY_JWKS_FILE` makes
//! the server do the same checks itself, and the 401s and the page's sign-in can be tried
//! without AWS: an RSA signature by the key whose `kid` the token names, `iss`, `aud` (or
//! Cognito's `client_id`), `exp`, `nbf` and `iat`. `alg: none`, HMAC and any algorithm
//! other than the RSA ones are refused before a key is looked at, so a public key can never
//! be used as an HMAC secret (algorithm confusion). The signature check is jsonwebtoken's.

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;

use super::auth::Caller;

/// Seconds of clock skew tolerated on `exp`, `nbf` and `iat`.
const LEEWAY: u64 = 60;

/// Why a bearer token was refused: the message a 401 carries. It names the check that
/// failed and never echoes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TokenError(pub String);

/// The issuer, the audiences and the RSA keys a token is checked against.
pub struct JwtVerifier {
    issuer: String,
    audiences: Vec<String>,
    keys: Vec<(String, DecodingKey)>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field(
                "keys",
                &self.keys.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The claims read; the rest of a token is ignored and never logged.
#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    iss: Option<String>,
    #[serde(default)]
    aud: Option<serde_json::Value>,
    client_id: Option<String>,
    iat: Option<serde_json::Value>,
}

impl JwtVerifier {
    /// A verifier from a JWKS document (the issuer's `jwks_uri`, saved to a file). Only RSA
    /// keys with a `kid` are kept; a set without one is an error.
    pub fn from_jwks(
        jwks: &str,
        issuer: &str,
        audiences: &[String],
    ) -> Result<JwtVerifier, String> {
        let set: JwkSet = serde_json::from_str(jwks).map_err(|e| format!("JWKS: {e}"))?;
        let keys: Vec<(String, DecodingKey)> = set
            .keys
            .iter()
            .filter(|k| matches!(k.algorithm, AlgorithmParameters::RSA(_)))
            .filter_map(|k| {
                let kid = k.common.key_id.clone()?;
                DecodingKey::from_jwk(k).ok().map(|key| (kid, key))
            })
            .collect();
        if keys.is_empty() {
            return Err("JWKS: no RSA key with a kid".into());
        }
        if issuer.trim().is_empty() || audiences.is_empty() {
            return Err("a JWT issuer and at least one audience are needed".into());
        }
        Ok(JwtVerifier {
            issuer: issuer.to_string(),
            audiences: audiences.to_vec(),
            keys,
        })
    }

    /// The caller a `Bearer` token stands for, or why it is refused.
    pub fn verify(&self, token: &str) -> Result<Caller, TokenError> {
        let refuse = |m: &str| TokenError(m.to_string());
        let header = decode_header(token).map_err(|_| refuse("the bearer token is not a JWT"))?;
        if !matches!(
            header.alg,
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512
        ) {
            return Err(TokenError(format!(
                "tokens signed with {:?} are not accepted; the issuer's RSA keys sign them",
                header.alg
            )));
        }
        let kid = header
            .kid
            .as_deref()
            .ok_or_else(|| refuse("the token names no key (kid)"))?;
        let key = self
            .keys
            .iter()
            .find(|(k, _)| k == kid)
            .map(|(_, key)| key)
            .ok_or_else(|| refuse("the token's key (kid) is not one of the issuer's"))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.validate_nbf = true;
        validation.validate_aud = false; // `aud` or `client_id`, checked below
        validation.leeway = LEEWAY;
        let claims = decode::<Claims>(token, key, &validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                refuse(match e.kind() {
                    ErrorKind::ExpiredSignature => "the token has expired",
                    ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
                    ErrorKind::InvalidIssuer => {
                        "the token's issuer is not the one this server trusts"
                    }
                    ErrorKind::InvalidSignature => "the token's signature does not verify",
                    ErrorKind::MissingRequiredClaim(_) => "the token lacks exp, iss or sub",
                    _ => "the token does not verify",
                })
            })?
            .claims;
        let audience_ok = match &claims.aud {
            Some(serde_json::Value::String(a)) => self.audiences.contains(a),
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .filter_map(|a| a.as_str())
                .any(|a| self.audiences.iter().any(|x| x == a)),
            _ => claims
                .client_id
                .as_ref()
                .is_some_and(|c| self.audiences.contains(c)),
        };
        if !audience_ok {
            return Err(refuse("the token is for another audience"));
        }
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(iat) = &claims.iat {
            let iat = iat
                .as_u64()
                .ok_or_else(|| refuse("the token's iat is not a time"))?;
            if iat > now + LEEWAY {
                return Err(refuse("the token was issued in the future (iat)"));
            }
        }
        Ok(Caller::Jwt {
            sub: claims.sub.unwrap_or_default(),
            issuer: claims.iss.unwrap_or_default(),
        })
    }
}
