//! Access tokens: identity-svc signs them, everyone else verifies them.
//!
//! Tokens are short-lived EdDSA (Ed25519) JWTs, so a service holding only
//! the public key can check them but never mint one. A token carries the
//! account's state version (`sv`); when an account is deactivated identity
//! raises that account's *session floor* in Redis, and every verifier refuses
//! a token below the floor — sessions end at once everywhere, not when their
//! tokens expire.
//!
//! A token is accepted only while its account *has* a floor: identity sets
//! it from Postgres at every login. A missing floor cannot be told apart
//! from one Redis lost (a restart without persistence, a failover that lost
//! writes, one Cluster node's share), so it is refused too — the user logs
//! in again, and that login rebuilds the floor from Postgres. Losing Redis
//! data thus logs people out; it never brings a revoked session back.

use std::{sync::Arc, time::Duration};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use tonic::{Code, Status};
use uuid::Uuid;

use crate::{
    config::Secret,
    error::{Refusal, reason},
    kv::Kv,
};

const ISSUER: &str = "reactivation-identity";
const AUDIENCE: &str = "reactivation";

/// What a caller may do beyond their own data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub roles: Vec<Role>,
    /// The account's state version when the token was issued.
    pub sv: i64,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
    pub jti: Uuid,
}

/// An Ed25519 key pair in PEM (PKCS#8 private, SPKI public), as operators
/// create them with `openssl genpkey -algorithm ed25519`.
#[derive(Debug, Clone)]
pub struct KeyPair {
    pub private_pem: Secret<String>,
    pub public_pem: String,
}

impl KeyPair {
    /// A fresh random key pair, for development and tests.
    pub fn generate() -> Self {
        let seed: [u8; 32] = rand::random();
        let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        // Fixed DER headers of an Ed25519 PKCS#8 private key and SPKI public key.
        const PRIVATE_PREFIX: [u8; 16] = [
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
        ];
        const PUBLIC_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
        let pem = |label: &str, prefix: &[u8], key: &[u8]| {
            let der = [prefix, key].concat();
            let body = base64::engine::general_purpose::STANDARD.encode(der);
            format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n")
        };
        Self {
            private_pem: Secret::new(pem("PRIVATE KEY", &PRIVATE_PREFIX, &seed)),
            public_pem: pem("PUBLIC KEY", &PUBLIC_PREFIX, &public),
        }
    }
}

/// Signs access tokens (identity-svc only).
#[derive(Clone)]
pub struct TokenSigner {
    key: Arc<EncodingKey>,
    ttl: Duration,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl TokenSigner {
    pub fn from_pem(private_pem: &Secret<String>, ttl: Duration) -> anyhow::Result<Self> {
        let key = EncodingKey::from_ed_pem(private_pem.expose().as_bytes())
            .map_err(|err| anyhow::anyhow!("JWT private key is not an Ed25519 PKCS#8 PEM: {err}"))?;
        Ok(Self {
            key: Arc::new(key),
            ttl,
        })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn sign(&self, user_id: Uuid, roles: Vec<Role>, state_version: i64) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            roles,
            sv: state_version,
            iat: now,
            exp: now + self.ttl.as_secs() as i64,
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            jti: Uuid::new_v4(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::EdDSA),
            &claims,
            &self.key,
        )?)
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: Uuid,
    pub roles: Vec<Role>,
    /// The bearer token itself, to forward on calls made on the caller's behalf.
    pub token: Secret<String>,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.roles.contains(&Role::Admin)
    }

    /// Refuses unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), Refusal> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(Refusal::new(
                Code::PermissionDenied,
                reason::ADMIN_REQUIRED,
                "This action requires the admin role.",
            ))
        }
    }

    /// Refuses unless the caller is `user_id` or an admin.
    pub fn require_self_or_admin(&self, user_id: Uuid) -> Result<(), Refusal> {
        if self.user_id == user_id || self.is_admin() {
            Ok(())
        } else {
            Err(Refusal::new(
                Code::PermissionDenied,
                reason::NOT_YOUR_ACCOUNT,
                "You can only act on your own account.",
            ))
        }
    }
}

/// A session floor's key, under the key prefix.
pub(crate) fn floor_key_parts(user_id: Uuid) -> [String; 2] {
    ["session-floor".to_owned(), user_id.to_string()]
}

/// Where session floors live; identity raises them, verifiers read them.
#[derive(Clone, Debug)]
pub struct SessionFloors {
    kv: Kv,
    /// How long a floor must be remembered: at least the lifetime of the
    /// longest token it could have to refuse.
    retention: Duration,
}

impl SessionFloors {
    pub fn new(kv: Kv, token_ttl: Duration) -> Self {
        Self {
            kv,
            retention: token_ttl * 2,
        }
    }

    fn key(&self, user_id: Uuid) -> String {
        self.kv.key(&floor_key_parts(user_id))
    }

    /// Tokens of `user_id` issued for a state version below `version` are
    /// refused from now on. Called by a change of state, holding the
    /// account's row lock, before it commits.
    pub async fn raise(&self, user_id: Uuid, version: i64) -> anyhow::Result<()> {
        self.set(user_id, version).await
    }

    /// Sets the floor to `version`, the account's committed state version,
    /// read under a lock that keeps any change of state out (identity's
    /// login). It rebuilds a floor Redis lost, renews its retention for the
    /// token about to be issued, and lowers a floor a change raised before
    /// failing to commit — so a failed commit costs its user a new login at
    /// most, never every login after.
    pub async fn confirm(&self, user_id: Uuid, version: i64) -> anyhow::Result<()> {
        self.set(user_id, version).await
    }

    async fn set(&self, user_id: Uuid, version: i64) -> anyhow::Result<()> {
        let key = self.key(user_id);
        let retention = self.retention.as_secs().max(1);
        // SET is idempotent: safe to repeat on a fresh connection.
        self.kv
            .retry_once(|mut connection| {
                let key = key.clone();
                async move { connection.set_ex::<_, _, ()>(key, version, retention).await }
            })
            .await?;
        Ok(())
    }

    async fn floor(&self, user_id: Uuid) -> anyhow::Result<Option<i64>> {
        let key = self.key(user_id);
        Ok(self
            .kv
            .retry_once(|mut connection| {
                let key = key.clone();
                async move { connection.get(key).await }
            })
            .await?)
    }
}

/// The shared secret the services of the mesh present to each other in
/// `x-internal-token` metadata. In a cluster, NetworkPolicies also keep
/// outsiders from reaching the services at all.
#[derive(Clone, Debug)]
pub struct InternalToken(Secret<String>);

const INTERNAL_TOKEN_HEADER: &str = "x-internal-token";

impl InternalToken {
    pub fn new(secret: Secret<String>) -> Self {
        Self(secret)
    }

    /// A random token, for development and tests.
    pub fn generate() -> Self {
        let bytes: [u8; 32] = rand::random();
        Self(Secret::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        ))
    }

    pub fn secret(&self) -> &Secret<String> {
        &self.0
    }

    /// Marks `request` as made by a service of the mesh.
    pub fn attach<T>(&self, request: &mut tonic::Request<T>) {
        if let Ok(value) = self.0.expose().parse() {
            request.metadata_mut().insert(INTERNAL_TOKEN_HEADER, value);
        }
    }

    fn is_presented_in(&self, metadata: &tonic::metadata::MetadataMap) -> bool {
        let Some(presented) = metadata.get(INTERNAL_TOKEN_HEADER) else {
            return false;
        };
        let (presented, expected) = (presented.as_bytes(), self.0.expose().as_bytes());
        // Constant time in the content, so the secret cannot be guessed
        // byte by byte from response times.
        presented.len() == expected.len()
            && presented.iter().zip(expected).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
    }
}

/// Who is calling a service: another service of the mesh, or a user.
#[derive(Debug, Clone)]
pub enum Principal {
    Service,
    User(Caller),
}

impl Principal {
    /// Refuses users other than admins.
    pub fn require_service_or_admin(&self) -> Result<(), Refusal> {
        match self {
            Self::Service => Ok(()),
            Self::User(caller) => caller.require_admin(),
        }
    }
}

/// Verifies bearer tokens: signature, expiry, issuer, audience, and the
/// session floor; and, when configured, the internal token of other
/// services. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    key: Arc<DecodingKey>,
    validation: Arc<Validation>,
    floors: SessionFloors,
    internal: Option<InternalToken>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

impl Authenticator {
    pub fn from_pem(public_pem: &str, floors: SessionFloors) -> anyhow::Result<Self> {
        let key = DecodingKey::from_ed_pem(public_pem.as_bytes())
            .map_err(|err| anyhow::anyhow!("JWT public key is not an Ed25519 SPKI PEM: {err}"))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        validation.leeway = 5;
        Ok(Self {
            key: Arc::new(key),
            validation: Arc::new(validation),
            floors,
            internal: None,
        })
    }

    /// Also accepts calls from other services presenting `token`.
    pub fn with_internal_token(mut self, token: InternalToken) -> Self {
        self.internal = Some(token);
        self
    }

    /// A service of the mesh (valid internal token) or an authenticated user.
    /// The caller, who must be a service of the mesh or an admin.
    pub async fn authenticate_service_or_admin(
        &self,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<Principal, Status> {
        let principal = self.authenticate_principal(metadata).await?;
        principal.require_service_or_admin()?;
        Ok(principal)
    }

    /// The caller must be a service of the mesh: for methods whose effects
    /// only another service may ask for (closing, erasing). An admin's token
    /// is not enough — admins act through the routes that lead there.
    pub async fn authenticate_service(&self, metadata: &tonic::metadata::MetadataMap) -> Result<(), Status> {
        match self.authenticate_principal(metadata).await? {
            Principal::Service => Ok(()),
            Principal::User(_) => Err(Refusal::new(
                Code::PermissionDenied,
                reason::SERVICE_ONLY,
                "Only services of the mesh may call this method.",
            )
            .into()),
        }
    }

    pub async fn authenticate_principal(&self, metadata: &tonic::metadata::MetadataMap) -> Result<Principal, Status> {
        if self
            .internal
            .as_ref()
            .is_some_and(|token| token.is_presented_in(metadata))
        {
            return Ok(Principal::Service);
        }
        self.authenticate(metadata).await.map(Principal::User)
    }

    /// The caller of a gRPC request, from its `authorization: Bearer …` metadata.
    pub async fn authenticate(&self, metadata: &tonic::metadata::MetadataMap) -> Result<Caller, Status> {
        let header = metadata.get("authorization").and_then(|value| value.to_str().ok());
        self.authenticate_header(header).await
    }

    /// The caller behind an `Authorization` header value.
    pub async fn authenticate_header(&self, header: Option<&str>) -> Result<Caller, Status> {
        let token = header
            .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| invalid_token("A bearer access token is required."))?;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|_| invalid_token("The access token is invalid or has expired. Please log in again."))?
            .claims;
        let floor = self.floors.floor(claims.sub).await.map_err(|err| {
            tracing::warn!(error = format!("{err:#}"), "session floor lookup failed");
            Status::from(crate::error::store_unavailable())
        })?;
        // No floor: never set (no login made one) or lost by Redis — the
        // two cannot be told apart, so the session is refused either way.
        if floor.is_none_or(|floor| claims.sv < floor) {
            return Err(Refusal::new(
                Code::Unauthenticated,
                reason::SESSION_REVOKED,
                "This session has ended. Please log in again.",
            )
            .into());
        }
        Ok(Caller {
            user_id: claims.sub,
            roles: claims.roles,
            token: Secret::new(token.to_owned()),
        })
    }
}

fn invalid_token(message: &str) -> Status {
    Refusal::new(Code::Unauthenticated, reason::TOKEN_INVALID, message).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_internal_token_is_accepted() {
        let token = InternalToken::generate();
        let mut request = tonic::Request::new(());
        assert!(!token.is_presented_in(request.metadata()));
        token.attach(&mut request);
        assert!(token.is_presented_in(request.metadata()));
        let other = InternalToken::generate();
        assert!(!other.is_presented_in(request.metadata()));
    }

    #[test]
    fn a_generated_key_pair_signs_what_its_public_half_verifies() {
        let pair = KeyPair::generate();
        let signer = TokenSigner::from_pem(&pair.private_pem, Duration::from_secs(60)).unwrap();
        let token = signer.sign(Uuid::new_v4(), vec![Role::User], 3).unwrap();
        let key = DecodingKey::from_ed_pem(pair.public_pem.as_bytes()).unwrap();
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[AUDIENCE]);
        let claims = jsonwebtoken::decode::<Claims>(&token, &key, &validation)
            .unwrap()
            .claims;
        assert_eq!(claims.sv, 3);
        assert_eq!(claims.roles, vec![Role::User]);

        let other = KeyPair::generate();
        let wrong = DecodingKey::from_ed_pem(other.public_pem.as_bytes()).unwrap();
        assert!(jsonwebtoken::decode::<Claims>(&token, &wrong, &validation).is_err());
    }
}
