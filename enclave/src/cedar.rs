//! KEE-1 P1: Cedar policy evaluation. Synchronous, default deny, and every failure — a
//! malformed request, an evaluation error, no policy set loaded — is a DENY with a reason.
//! The policy set sits behind an `RwLock<Arc<_>>` so a swap is atomic: a reader holds one
//! whole set for its evaluation, never half of two.

use cedar_policy::{Authorizer, Context, Entities, EntityUid, PolicySet, Request};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use wire::msg::{Decision, EvaluateParams};

/// Longest context or entities JSON accepted (64 KiB).
pub const MAX_JSON_BYTES: usize = 64 * 1024;

/// A loaded policy set and its hash (`cap_profile_hash`).
#[derive(Debug)]
pub struct LoadedPolicies {
    set: PolicySet,
    /// The set sliced by scope (see [`Slices`]); `None` when slicing does not apply.
    slices: Option<Slices>,
    hash: [u8; 32],
    /// The exact text hashed, kept so the KEE-1 P3 check can recompute the hash of the live
    /// set instead of trusting the stored one.
    text: String,
}

/// Errors loading a policy set.
#[derive(Debug, thiserror::Error)]
pub enum CedarError {
    /// "cedar policy set does not parse".
    #[error("cedar policy set does not parse: {0}")]
    Parse(String),
}

impl LoadedPolicies {
    /// Parses Cedar policy text; the hash is SHA-256 of the exact text.
    pub fn parse(text: &str) -> Result<Self, CedarError> {
        let set: PolicySet = text
            .parse()
            .map_err(|e: cedar_policy::ParseErrors| CedarError::Parse(e.to_string()))?;
        Ok(Self {
            slices: Slices::build(&set),
            set,
            hash: attestation::sha256(text.as_bytes()),
            text: text.to_string(),
        })
    }
    /// The same set evaluated whole (no scope slicing): the baseline the bench compares with.
    #[doc(hidden)]
    pub fn without_slices(mut self) -> Self {
        self.slices = None;
        self
    }
    /// SHA-256 recomputed now over the text this set was parsed from.
    pub fn recompute_hash(&self) -> [u8; 32] {
        attestation::sha256(self.text.as_bytes())
    }
    /// The `cap_profile_hash`.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }
}

/// Most (principal, action) slices precomputed; a set that would need more is evaluated
/// whole.
pub const MAX_SLICES: usize = 4096;

/// The policy set cut by scope, so that a request is evaluated only against the policies
/// whose `principal ==` and `action ==` constraints it can satisfy. Exact: Cedar evaluates a
/// policy's scope before its conditions (one short-circuit conjunction), so a policy whose
/// `==` scope names another principal or action can neither apply nor raise an error.
/// Constraints that depend on the entity hierarchy (`in`, `is … in`) and unconstrained scopes
/// keep a policy in every slice. Sets with templates are not sliced.
#[derive(Debug)]
struct Slices {
    principals: std::collections::HashSet<EntityUid>,
    actions: std::collections::HashSet<EntityUid>,
    sets: HashMap<(Option<EntityUid>, Option<EntityUid>), PolicySet>,
}

impl Slices {
    fn build(set: &PolicySet) -> Option<Self> {
        use cedar_policy::{ActionConstraint, PrincipalConstraint};
        if set.templates().next().is_some() {
            return None;
        }
        let policies: Vec<&cedar_policy::Policy> = set.policies().collect();
        if policies.iter().any(|p| !p.is_static()) {
            return None;
        }
        let mut principals = std::collections::HashSet::new();
        let mut actions = std::collections::HashSet::new();
        for p in &policies {
            if let PrincipalConstraint::Eq(u) = p.principal_constraint() {
                principals.insert(u);
            }
            if let ActionConstraint::Eq(u) = p.action_constraint() {
                actions.insert(u);
            }
        }
        let keys_p: Vec<Option<EntityUid>> = principals
            .iter()
            .cloned()
            .map(Some)
            .chain(std::iter::once(None))
            .collect();
        let keys_a: Vec<Option<EntityUid>> = actions
            .iter()
            .cloned()
            .map(Some)
            .chain(std::iter::once(None))
            .collect();
        if keys_p.len().saturating_mul(keys_a.len()) > MAX_SLICES {
            return None;
        }
        let mut sets = HashMap::new();
        for kp in &keys_p {
            for ka in &keys_a {
                let chosen = policies.iter().filter(|p| {
                    let pr = match p.principal_constraint() {
                        PrincipalConstraint::Eq(u) => kp.as_ref() == Some(&u),
                        _ => true,
                    };
                    let ac = match p.action_constraint() {
                        ActionConstraint::Eq(u) => ka.as_ref() == Some(&u),
                        _ => true,
                    };
                    pr && ac
                });
                let slice = PolicySet::from_policies(chosen.map(|p| (*p).clone())).ok()?;
                sets.insert((kp.clone(), ka.clone()), slice);
            }
        }
        Some(Self {
            principals,
            actions,
            sets,
        })
    }

    fn for_request(&self, principal: &EntityUid, action: &EntityUid) -> Option<&PolicySet> {
        let kp = self
            .principals
            .contains(principal)
            .then(|| principal.clone());
        let ka = self.actions.contains(action).then(|| action.clone());
        self.sets.get(&(kp, ka))
    }
}

/// The outcome of one evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Allow or deny.
    pub decision: Decision,
    /// Policies that determined it.
    pub policies: Vec<String>,
    /// Errors and deny reasons.
    pub reasons: Vec<String>,
    /// Hash of the policy set that decided (empty-set hash when none was loaded).
    pub cap_profile_hash: [u8; 32],
}

/// The policy engine.
#[derive(Debug)]
pub struct Engine {
    current: RwLock<Option<Arc<LoadedPolicies>>>,
    authorizer: Authorizer,
    cache: Mutex<EvalCache>,
    /// `soos.governance.cedar.evaluate` spans (KEE-1 P6); off unless a kernel sets it.
    otel: crate::otel::Telemetry,
}

/// Most decisions the evaluation cache holds; a full cache is emptied and refilled.
pub const MAX_CACHED_DECISIONS: usize = 16_384;

/// KEE-2 D1's evaluation cache: outcomes by request, for one policy set. The key is SHA-256
/// over the whole request (principal, action, resource, context JSON, entities JSON, each
/// length-prefixed) — D1 names (action_type, context_hash, cap_profile_hash); the principal,
/// resource and entities are in the key too, because the decision depends on them. A cache
/// belongs to one `cap_profile_hash` and is emptied when the set changes, so a swap can never
/// serve an outcome of the old set.
#[derive(Debug, Default)]
struct EvalCache {
    cap_profile_hash: [u8; 32],
    outcomes: HashMap<[u8; 32], Outcome>,
}

fn request_key(p: &EvaluateParams) -> [u8; 32] {
    let mut h = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [
        &p.principal,
        &p.action,
        &p.resource,
        &p.context_json,
        &p.entities_json,
    ] {
        h.update(&u64::try_from(part.len()).unwrap_or(u64::MAX).to_be_bytes());
        h.update(part.as_bytes());
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(h.finish().as_ref());
    key
}

impl Engine {
    /// An engine with `policies` (or none: then everything is denied).
    pub fn new(policies: Option<LoadedPolicies>) -> Self {
        Self {
            current: RwLock::new(policies.map(Arc::new)),
            authorizer: Authorizer::new(),
            cache: Mutex::new(EvalCache::default()),
            otel: crate::otel::Telemetry::off(),
        }
    }

    /// KEE-1 P3 check 2: the hash recomputed over the live policy set (`None`: no set is
    /// loaded, so there is nothing a record could commit to).
    pub fn live_policy_hash(&self) -> Option<[u8; 32]> {
        let g = self.current.read().ok()?;
        g.as_ref().map(|p| p.recompute_hash())
    }

    /// This engine, with one `soos.governance.cedar.evaluate` span per [`Engine::evaluate`]
    /// made by `otel`, in the trace of the request's session.
    pub fn with_telemetry(mut self, otel: crate::otel::Telemetry) -> Self {
        self.otel = otel;
        self
    }

    /// Replaces the policy set atomically, and empties the evaluation cache.
    pub fn swap(&self, policies: LoadedPolicies) {
        if let Ok(mut g) = self.current.write() {
            *g = Some(Arc::new(policies));
        }
        if let Ok(mut c) = self.cache.lock() {
            c.outcomes.clear();
        }
    }

    /// Evaluates a request through the evaluation cache: an identical request under the same
    /// policy set gets the outcome computed the first time. Every call has its span (session
    /// `default` when the request names none, as in the audit log).
    pub fn evaluate(&self, p: &EvaluateParams) -> Outcome {
        let session = if p.session_id.is_empty() {
            "default"
        } else {
            &p.session_id
        };
        let mut span = self.otel.span(crate::otel::names::CEDAR_EVALUATE, session);
        let (o, cached) = self.evaluate_cached(p);
        span.set_attr(
            "soos.cedar.decision",
            match o.decision {
                Decision::Allow => "allow",
                Decision::Deny => "deny",
            },
        );
        span.set_list("soos.cedar.policies", &o.policies);
        if !o.reasons.is_empty() {
            span.set_list("soos.cedar.reasons", &o.reasons);
        }
        span.set_hex("soos.cap_profile_hash", &o.cap_profile_hash);
        span.set_attr("soos.cedar.action", p.action.clone());
        span.set_attr("soos.cedar.cached", cached);
        o
    }

    fn evaluate_cached(&self, p: &EvaluateParams) -> (Outcome, bool) {
        let Some(policies) = self.snapshot() else {
            return (self.evaluate_uncached(p), false);
        };
        let key = request_key(p);
        if let Ok(mut c) = self.cache.lock() {
            if c.cap_profile_hash != policies.hash {
                c.cap_profile_hash = policies.hash;
                c.outcomes.clear();
            }
            if let Some(o) = c.outcomes.get(&key) {
                return (o.clone(), true);
            }
        }
        let o = self.evaluate_with(&policies, p);
        if let Ok(mut c) = self.cache.lock() {
            // Only under the set it was computed with (a swap may have happened meanwhile).
            if c.cap_profile_hash == policies.hash {
                if c.outcomes.len() >= MAX_CACHED_DECISIONS {
                    c.outcomes.clear();
                }
                c.outcomes.insert(key, o.clone());
            }
        }
        (o, false)
    }

    /// How many outcomes the cache holds (for tests and metrics).
    pub fn cached_decisions(&self) -> usize {
        self.cache.lock().map_or(0, |c| c.outcomes.len())
    }

    /// The hash of the current set (SHA-256 of "" when none is loaded).
    pub fn cap_profile_hash(&self) -> [u8; 32] {
        self.snapshot()
            .map(|p| p.hash)
            .unwrap_or_else(|| attestation::sha256(b""))
    }

    fn snapshot(&self) -> Option<Arc<LoadedPolicies>> {
        self.current.read().ok().and_then(|g| g.clone())
    }

    /// Evaluates a request with Cedar, bypassing the cache. Never fails: every error is a
    /// deny with its reason.
    pub fn evaluate_uncached(&self, p: &EvaluateParams) -> Outcome {
        let Some(policies) = self.snapshot() else {
            return deny(attestation::sha256(b""), "no cedar policy set is loaded");
        };
        self.evaluate_with(&policies, p)
    }

    fn evaluate_with(&self, policies: &LoadedPolicies, p: &EvaluateParams) -> Outcome {
        let hash = policies.hash;
        match build_request(p) {
            Ok((request, entities, principal, action)) => {
                let set = policies
                    .slices
                    .as_ref()
                    .and_then(|s| s.for_request(&principal, &action))
                    .unwrap_or(&policies.set);
                let resp = self.authorizer.is_authorized(&request, set, &entities);
                let diag = resp.diagnostics();
                // Report a policy's `@id("...")` annotation when it has one, else Cedar's id.
                let policies_hit: Vec<String> = diag
                    .reason()
                    .map(|id| {
                        policies
                            .set
                            .policy(id)
                            .and_then(|p| p.annotation("id"))
                            .map(str::to_string)
                            .unwrap_or_else(|| id.to_string())
                    })
                    .collect();
                let errors: Vec<String> = diag.errors().map(|e| e.to_string()).collect();
                let decision = match resp.decision() {
                    cedar_policy::Decision::Allow if errors.is_empty() => Decision::Allow,
                    _ => Decision::Deny,
                };
                let mut reasons = errors;
                if decision == Decision::Deny && reasons.is_empty() {
                    reasons.push(if policies_hit.is_empty() {
                        "no policy permits this request".to_string()
                    } else {
                        "forbidden by policy".to_string()
                    });
                }
                Outcome {
                    decision,
                    policies: policies_hit,
                    reasons,
                    cap_profile_hash: hash,
                }
            }
            Err(reason) => deny(hash, &reason),
        }
    }
}

fn deny(hash: [u8; 32], reason: &str) -> Outcome {
    Outcome {
        decision: Decision::Deny,
        policies: Vec::new(),
        reasons: vec![reason.to_string()],
        cap_profile_hash: hash,
    }
}

/// Most entity type names remembered by [`fast_uid`].
const MAX_TYPE_NAMES: usize = 1024;

/// `Type::"id"` without going through Cedar's grammar for the common case: an id with no
/// escape or quote, and a type name already seen (type names are few; each is parsed by
/// Cedar once and remembered). Anything else is `None`, and the caller parses the whole uid
/// with Cedar, so the result is always what Cedar's parser would give
/// (`tests::fast_uid_agrees_with_cedars_parser`).
fn fast_uid(s: &str) -> Option<EntityUid> {
    use cedar_policy::{EntityId, EntityTypeName};
    use std::sync::OnceLock;
    static NAMES: OnceLock<RwLock<HashMap<String, EntityTypeName>>> = OnceLock::new();
    let (ty, rest) = s.split_once("::\"")?;
    let id = rest.strip_suffix('"')?;
    if id.contains(['"', '\\']) {
        return None;
    }
    let names = NAMES.get_or_init(|| RwLock::new(HashMap::new()));
    let known = names.read().ok()?.get(ty).cloned();
    let name = match known {
        Some(n) => n,
        None => {
            let n: EntityTypeName = ty.parse().ok()?;
            if let Ok(mut w) = names.write() {
                if w.len() < MAX_TYPE_NAMES {
                    w.insert(ty.to_string(), n.clone());
                }
            }
            n
        }
    };
    Some(EntityUid::from_type_name_and_id(name, EntityId::new(id)))
}

fn build_request(p: &EvaluateParams) -> Result<(Request, Entities, EntityUid, EntityUid), String> {
    if p.context_json.len() > MAX_JSON_BYTES || p.entities_json.len() > MAX_JSON_BYTES {
        return Err("context or entities larger than 64 KiB".into());
    }
    let uid = |what: &str, s: &str| -> Result<EntityUid, String> {
        if let Some(u) = fast_uid(s) {
            return Ok(u);
        }
        s.parse::<EntityUid>()
            .map_err(|e| format!("{what} `{s}` is not a cedar entity uid: {e}"))
    };
    let principal = uid("principal", &p.principal)?;
    let action = uid("action", &p.action)?;
    let resource = uid("resource", &p.resource)?;
    let context = if p.context_json.trim().is_empty() {
        Context::empty()
    } else {
        Context::from_json_str(&p.context_json, None).map_err(|e| format!("context: {e}"))?
    };
    let entities = if p.entities_json.trim().is_empty() {
        Entities::empty()
    } else {
        Entities::from_json_str(&p.entities_json, None).map_err(|e| format!("entities: {e}"))?
    };
    let request = Request::new(principal.clone(), action.clone(), resource, context, None)
        .map_err(|e| format!("request: {e}"))?;
    Ok((request, entities, principal, action))
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
        permit(principal == Agent::"planner", action == Action::"read", resource)
        when { context.purpose == "relief" };
        forbid(principal, action == Action::"delete", resource);
    "#;

    fn params(principal: &str, action: &str, context: &str) -> EvaluateParams {
        EvaluateParams {
            principal: principal.into(),
            action: action.into(),
            resource: "Dataset::\"census\"".into(),
            context_json: context.into(),
            entities_json: String::new(),
            session_id: String::new(),
            agent_xpid: String::new(),
        }
    }

    #[test]
    fn allow_deny_and_errors() {
        let e = Engine::new(Some(LoadedPolicies::parse(POLICY).unwrap()));
        let ok = e.evaluate(&params(
            "Agent::\"planner\"",
            "Action::\"read\"",
            r#"{"purpose":"relief"}"#,
        ));
        assert_eq!(ok.decision, Decision::Allow);
        assert_eq!(ok.policies, vec!["policy0".to_string()]);
        let wrong_purpose = e.evaluate(&params(
            "Agent::\"planner\"",
            "Action::\"read\"",
            r#"{"purpose":"ads"}"#,
        ));
        assert_eq!(wrong_purpose.decision, Decision::Deny);
        let del = e.evaluate(&params("Agent::\"planner\"", "Action::\"delete\"", ""));
        assert_eq!(del.decision, Decision::Deny);
        // Evaluation error (missing context attribute) is a deny with the error as reason.
        let err = e.evaluate(&params("Agent::\"planner\"", "Action::\"read\"", ""));
        assert_eq!(err.decision, Decision::Deny);
        assert!(!err.reasons.is_empty());
        // Malformed uid.
        let bad = e.evaluate(&params("not a uid", "Action::\"read\"", ""));
        assert_eq!(bad.decision, Decision::Deny);
        assert!(bad.reasons[0].contains("principal"));
    }

    #[test]
    fn no_policy_set_denies_everything() {
        let e = Engine::new(None);
        let o = e.evaluate(&params(
            "Agent::\"planner\"",
            "Action::\"read\"",
            r#"{"purpose":"relief"}"#,
        ));
        assert_eq!(o.decision, Decision::Deny);
        assert_eq!(o.reasons, vec!["no cedar policy set is loaded".to_string()]);
    }

    #[test]
    fn swap_is_atomic_under_concurrent_readers() {
        let e = Arc::new(Engine::new(Some(LoadedPolicies::parse(POLICY).unwrap())));
        let deny_all = "forbid(principal, action, resource);";
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let e = e.clone();
                std::thread::spawn(move || {
                    for _ in 0..300 {
                        let o = e.evaluate(&params(
                            "Agent::\"planner\"",
                            "Action::\"read\"",
                            r#"{"purpose":"relief"}"#,
                        ));
                        // Each evaluation sees one whole set: allow under POLICY, deny under deny-all.
                        let h1 = attestation::sha256(POLICY.as_bytes());
                        let h2 = attestation::sha256(deny_all.as_bytes());
                        match o.decision {
                            Decision::Allow => assert_eq!(o.cap_profile_hash, h1),
                            Decision::Deny => assert_eq!(o.cap_profile_hash, h2),
                        }
                    }
                })
            })
            .collect();
        for i in 0..50 {
            let text = if i % 2 == 0 { deny_all } else { POLICY };
            e.swap(LoadedPolicies::parse(text).unwrap());
        }
        for r in readers {
            r.join().unwrap();
        }
    }

    #[test]
    fn the_cache_answers_repeats_and_never_outlives_a_swap() {
        let e = Engine::new(Some(LoadedPolicies::parse(POLICY).unwrap()));
        let planner = params(
            "Agent::\"planner\"",
            "Action::\"read\"",
            r#"{"purpose":"relief"}"#,
        );
        let scraper = params(
            "Agent::\"scraper\"",
            "Action::\"read\"",
            r#"{"purpose":"relief"}"#,
        );
        let first = e.evaluate(&planner);
        assert_eq!(first.decision, Decision::Allow);
        assert_eq!(e.cached_decisions(), 1);
        assert_eq!(
            e.evaluate(&planner),
            first,
            "a repeat is answered from the cache"
        );
        assert_eq!(e.cached_decisions(), 1);
        // Same action and context, other principal: its own entry and its own decision.
        assert_eq!(e.evaluate(&scraper).decision, Decision::Deny);
        assert_eq!(e.cached_decisions(), 2);
        // A swap empties the cache: the cached allow is not served under the new set.
        e.swap(LoadedPolicies::parse(r#"forbid(principal, action, resource);"#).unwrap());
        assert_eq!(e.cached_decisions(), 0);
        let after = e.evaluate(&planner);
        assert_eq!(after.decision, Decision::Deny);
        assert_ne!(after.cap_profile_hash, first.cap_profile_hash);
        assert_eq!(after, e.evaluate_uncached(&planner));
    }

    #[test]
    fn the_cache_is_bounded() {
        let e = Engine::new(Some(LoadedPolicies::parse(POLICY).unwrap()));
        for i in 0..MAX_CACHED_DECISIONS + 10 {
            e.evaluate(&params(&format!("Agent::\"a{i}\""), "Action::\"read\"", ""));
        }
        assert!(e.cached_decisions() <= MAX_CACHED_DECISIONS);
        assert!(e.cached_decisions() >= 10);
    }

    /// Slicing by scope never changes an outcome: every request is evaluated against the
    /// whole set by Cedar directly and through the engine, and the decision, the deciding
    /// policies and the errors agree. The set mixes `==`, `in`, `is`, unconstrained and
    /// action-list scopes, permits and forbids, and conditions that raise errors.
    #[test]
    fn slicing_by_scope_matches_the_whole_set() {
        let text = r#"
            @id("p-eq") permit(principal == Agent::"a", action == Action::"read", resource);
            @id("p-eq-cond") permit(principal == Agent::"b", action == Action::"read", resource)
                when { context.purpose == "relief" };
            @id("p-in") permit(principal in Team::"ops", action == Action::"write", resource);
            @id("p-is") permit(principal is Agent, action == Action::"list", resource);
            @id("p-any") permit(principal, action in [Action::"read", Action::"list"], resource)
                when { context.clearance > 3 };
            @id("f-err") forbid(principal == Agent::"c", action, resource)
                when { context.missing_field == 1 };
            @id("f-eq") forbid(principal, action == Action::"delete", resource);
            @id("f-any") forbid(principal, action, resource) when { context.clearance < 0 };
        "#;
        let loaded = LoadedPolicies::parse(text).unwrap();
        assert!(loaded.slices.is_some(), "this set is sliceable");
        let whole: PolicySet = text.parse().unwrap();
        let e = Engine::new(Some(loaded));
        let auth = Authorizer::new();
        let principals = [
            "Agent::\"a\"",
            "Agent::\"b\"",
            "Agent::\"c\"",
            "Agent::\"z\"",
            "User::\"u\"",
        ];
        let actions = [
            "Action::\"read\"",
            "Action::\"write\"",
            "Action::\"list\"",
            "Action::\"delete\"",
            "Action::\"other\"",
        ];
        let contexts = [
            r#"{"purpose":"relief","clearance":5}"#,
            r#"{"purpose":"ads","clearance":1}"#,
            r#"{"purpose":"relief","clearance":-1}"#,
        ];
        let entities = r#"[{"uid":{"type":"Agent","id":"a"},"attrs":{},"parents":[{"type":"Team","id":"ops"}]},
                           {"uid":{"type":"User","id":"u"},"attrs":{},"parents":[{"type":"Team","id":"ops"}]}]"#;
        let mut n = 0;
        for pr in principals {
            for ac in actions {
                for cx in contexts {
                    let mut p = params(pr, ac, cx);
                    p.entities_json = entities.into();
                    let o = e.evaluate_uncached(&p);
                    let (req, ents, _, _) = build_request(&p).unwrap();
                    let direct = auth.is_authorized(&req, &whole, &ents);
                    let mut want: Vec<String> = direct
                        .diagnostics()
                        .reason()
                        .map(|id| {
                            whole
                                .policy(id)
                                .and_then(|x| x.annotation("id"))
                                .unwrap_or_default()
                                .to_string()
                        })
                        .collect();
                    let mut got = o.policies.clone();
                    want.sort();
                    got.sort();
                    assert_eq!(got, want, "{pr} {ac} {cx}");
                    let errors = direct.diagnostics().errors().count();
                    let expect =
                        if direct.decision() == cedar_policy::Decision::Allow && errors == 0 {
                            Decision::Allow
                        } else {
                            Decision::Deny
                        };
                    assert_eq!(o.decision, expect, "{pr} {ac} {cx}");
                    if errors > 0 {
                        assert!(!o.reasons.is_empty());
                    }
                    n += 1;
                }
            }
        }
        assert_eq!(n, 75);
    }

    #[test]
    fn fast_uid_agrees_with_cedars_parser() {
        let inputs = [
            r#"Agent::"planner""#,
            r#"Agent::"planner""#,
            r#"Ns::Sub::Agent::"x y""#,
            r#"Agent::"ünïcødé-7""#,
            r#"Agent::"""#,
            r#"Action::"read""#,
            r#"Agent::"a\"b""#,
            r#"Agent::"a\\b""#,
            r#"Agent ::"spaced""#,
            r#"if::"keyword""#,
            r#"Agent::"unterminated"#,
            r#"Agent::x"#,
            r#"::"x""#,
            r#"Agent::"x"::"y""#,
        ];
        for s in inputs {
            let cedar = s.parse::<EntityUid>();
            match (fast_uid(s), &cedar) {
                (Some(f), Ok(c)) => assert_eq!(&f, c, "{s}"),
                (Some(f), Err(e)) => panic!("fast path accepted `{s}` as {f} but cedar says {e}"),
                (None, _) => {}
            }
        }
        assert!(fast_uid(r#"Agent::"planner""#).is_some());
        assert!(
            fast_uid(r#"Agent::"a\"b""#).is_none(),
            "escapes go to cedar"
        );
    }
}
