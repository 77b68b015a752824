//! Every transition of the coordinator, driven directly: real threshold encryption, no socket,
//! no clock (time is passed in), no disk (snapshots are acknowledged by hand). The hospitals are
//! the in-memory driver's ([`crate::driver`]).

use core::time::Duration;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use fedcare_crypto::{Crs, WireLimits};

use super::*;
use crate::driver::{self, TestKey, carry_out, node, test_keys, test_plan, test_settings, upload};
use crate::error::TrustError;
use crate::participant::Participant;
use crate::roster::Consortium;
use crate::{Error, PublicFigures};

const HOSPITALS: [&str; 3] = ["a", "b", "c"];
const PHASE: Duration = Duration::from_secs(10);
const JOIN: Duration = Duration::from_secs(30);

fn plan() -> Arc<FederationPlan> {
    Arc::new(test_plan(&HOSPITALS, test_settings(1)))
}

/// The tests' base instant: time moves only as a test says.
#[allow(clippy::disallowed_methods)]
fn start_time() -> Instant {
    Instant::now()
}

/// A coordinator whose CRS counts up from 1, and the time it started.
fn coordinator() -> (Coordinator, Instant) {
    let start = start_time();
    let mut next = 0u128;
    let crs = Box::new(move || {
        next += 1;
        Crs(next)
    });
    (Coordinator::new(plan(), None, start, crs).unwrap(), start)
}

fn join(c: &mut Coordinator, name: &str, now: Instant) -> Vec<Action> {
    c.handle(Event::Join { node: node(name), federation_id: "fed".into() }, now).unwrap()
}

/// The hospitals' signing keys (made once) and the roster of all three.
fn keys() -> &'static (Vec<Arc<TestKey>>, Consortium) {
    static KEYS: OnceLock<(Vec<Arc<TestKey>>, Consortium)> = OnceLock::new();
    KEYS.get_or_init(|| test_keys(&HOSPITALS))
}

/// One hospital's side: the driver's hospital (the real participant logic, a ledger in memory,
/// a fixed contribution) for one of the three.
struct Hospital {
    name: &'static str,
    inner: driver::Hospital,
}

impl Hospital {
    fn new(name: &'static str) -> Self {
        let (keys, consortium) = keys();
        let index = HOSPITALS.iter().position(|h| *h == name).unwrap();
        Self { name, inner: driver::Hospital::new(name, keys[index].clone(), consortium.clone()) }
    }

    /// The hospital's participant, made at its first task (as at its join).
    fn participant(&mut self, c: &Coordinator) -> &mut Participant {
        self.inner.participant(&c.plan.settings)
    }

    /// The bytes this hospital uploads for `task`.
    fn answer(&mut self, c: &Coordinator, task: &Task) -> (UploadKind, Vec<u8>) {
        self.inner.answer(&c.plan.settings, task)
    }

    /// What this hospital uploads for `task`, or why it refuses.
    fn try_answer(&mut self, c: &Coordinator, task: &Task) -> Result<(UploadKind, Vec<u8>), Error> {
        self.inner.try_answer(&c.plan.settings, task)
    }
}

/// Phases of one session.
const SESSION: usize = 10;

/// Every listed hospital answers its current task once; returns the snapshots made.
fn phase(c: &mut Coordinator, hospitals: &mut [Hospital], now: Instant) -> Vec<Snapshot> {
    let mut snapshots = Vec::new();
    for hospital in hospitals.iter_mut() {
        let task = c.task_for(&node(hospital.name)).unwrap();
        if task.kind == TaskKind::Wait {
            continue;
        }
        let (kind, bytes) = hospital.answer(c, &task);
        let actions = upload(c, hospital.name, task.session, kind, &bytes, now).unwrap();
        snapshots.extend(carry_out(c, actions, now));
    }
    snapshots
}

/// `count` phases of every listed hospital; the snapshots made.
fn phases(c: &mut Coordinator, hospitals: &mut [Hospital], count: usize, now: Instant) -> Vec<Snapshot> {
    (0..count).flat_map(|_| phase(c, hospitals, now)).collect()
}

/// A coordinator whose three hospitals have joined, with its first session started.
fn started() -> (Coordinator, Instant, [Hospital; 3]) {
    let (mut c, start) = coordinator();
    all_join(&mut c, start);
    c.tick(start);
    (c, start, HOSPITALS.map(Hospital::new))
}

fn acknowledge(c: &mut Coordinator, snapshots: Vec<Snapshot>) {
    driver::acknowledge(c, snapshots, start_time());
}

fn all_join(c: &mut Coordinator, now: Instant) {
    for name in HOSPITALS {
        assert!(join(c, name, now).is_empty());
    }
}

fn running(c: &Coordinator) -> SessionId {
    c.status(&node("a")).unwrap().session.expect("a session is running")
}

#[test]
fn a_federation_runs_setup_training_and_evaluation_to_the_end() {
    let (mut c, start) = coordinator();
    assert_eq!(c.task_for(&node("a")).unwrap_err(), Refusal::NotJoined);
    all_join(&mut c, start);
    assert!(c.tick(start).is_empty());
    assert_eq!(running(&c), SessionId { round: 0, attempt: 0 });
    let mut hospitals = HOSPITALS.map(Hospital::new);
    let mut snapshots = Vec::new();
    for _ in 0..3 * SESSION {
        snapshots.extend(phase(&mut c, &mut hospitals, start));
    }
    assert!(c.is_finished() && !c.is_persisted(), "finished, snapshots pending");
    let kinds: Vec<SessionKind> = c.records().iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [SessionKind::Setup, SessionKind::Train, SessionKind::Evaluate]);
    assert_eq!((c.figures.train_rows, c.figures.test_rows), (30, 6), "three hospitals' exact counts");
    // The mean update is the weighted mean of 0.25 per parameter (weights 1/3 each): the state
    // the evaluation started from.
    let initial = fedcare_core::rng::init_params(&c.plan.settings.spec, 0);
    let trained = snapshots.iter().find(|s| s.checkpoint.next.is_some_and(|n| n.kind == SessionKind::Evaluate));
    for (after, before) in trained.unwrap().checkpoint.global.iter().zip(&initial) {
        assert!((after - before - 0.25).abs() < 1e-5, "{after} vs {before} + 0.25");
    }
    // Both evaluations scored AUROC 1: on the tie the earlier model, the initial one, is kept
    // and handed out.
    assert_eq!(c.outcome().kept().map(|r| r.round), Some(1));
    assert_eq!(c.outcome().global, initial);
    let best = c.server.best.as_ref().unwrap();
    assert_eq!((best.trained_rounds, best.auroc), (0, 1.0));
    let train = &c.records()[1];
    assert!((train.train_loss.unwrap() - 0.5).abs() < 1e-5);
    assert_eq!((train.test_rows, train.test_positives), (Some(6), Some(3)));
    assert_eq!(train.auroc, Some(1.0));
    // The final model goes out only once every snapshot is written, and is the last written.
    // Each session wrote two: its opened decryption, then its result.
    assert_eq!(snapshots.len(), 6);
    assert_eq!(snapshots.iter().filter(|s| s.checkpoint.opened.is_some()).count(), 3);
    assert_eq!(c.task_for(&node("a")).unwrap().kind, TaskKind::Wait);
    let last = snapshots.last().unwrap().model.to_bytes().unwrap();
    acknowledge(&mut c, snapshots.split_off(5));
    let done = c.task_for(&node("a")).unwrap();
    assert_eq!(done.kind, TaskKind::Done);
    assert_eq!(done.sections, [Bytes::from(last)]);
    assert!(!c.all_delivered());
    for name in HOSPITALS {
        c.handle(Event::TaskSent { node: node(name), session: None, bytes: 1, done: true }, start).unwrap();
    }
    assert!(c.all_delivered());
}

#[test]
fn the_first_session_waits_for_every_hospital_or_the_join_timeout() {
    let (mut c, start) = coordinator();
    join(&mut c, "a", start);
    join(&mut c, "b", start);
    c.tick(start + JOIN / 2);
    assert!(c.status(&node("a")).unwrap().session.is_none(), "waits for c");
    c.tick(start + JOIN);
    assert_eq!(running(&c), SessionId { round: 0, attempt: 0 });
    assert_eq!(c.status(&node("a")).unwrap().active, [node("a"), node("b")]);

    // Alone at the timeout: the federation fails, saying who joined.
    let (mut lonely, start) = coordinator();
    join(&mut lonely, "a", start);
    assert_eq!(lonely.tick(start + JOIN).len(), 1);
    let failure = lonely.outcome().failure.unwrap();
    assert_eq!(failure, Failure::TooFewJoined { joined: 1, needed: 2, waited_secs: 30 });
    assert_eq!(lonely.task_for(&node("a")).unwrap().kind, TaskKind::Failed);

    // A hospital that said it leaves counts as accounted for: no need to wait for it.
    let (mut early, start) = coordinator();
    join(&mut early, "a", start);
    join(&mut early, "b", start);
    join(&mut early, "c", start);
    early
        .handle(Event::Leave { node: node("c"), federation_id: "fed".into(), reason: "too few patients".into() }, start)
        .unwrap();
    early.tick(start);
    assert_eq!(early.status(&node("a")).unwrap().active, [node("a"), node("b")]);
}

#[test]
fn a_missed_deadline_drops_the_silent_hospital_and_restarts_with_fresh_keys() {
    let (mut c, start, _) = started();
    let first_crs = c.task_for(&node("a")).unwrap().crs;
    let mut answering = [Hospital::new("a"), Hospital::new("b")];
    phase(&mut c, &mut answering, start);
    assert!(c.tick(start + PHASE - Duration::from_millis(1)).is_empty(), "before the deadline nothing happens");
    assert_eq!(c.next_deadline(), Some(start + PHASE));
    c.tick(start + PHASE);
    assert_eq!(running(&c), SessionId { round: 0, attempt: 1 });
    assert_eq!(c.status(&node("a")).unwrap().active, [node("a"), node("b")], "c was dropped");
    let task = c.task_for(&node("a")).unwrap();
    assert_eq!(task.kind, TaskKind::KeyGen, "a fresh key generation");
    assert_ne!(task.crs, first_crs, "with a fresh CRS");
    assert_eq!(c.task_for(&node("c")).unwrap().kind, TaskKind::Wait, "c is not in the new attempt");
    // The rest finish the federation.
    let now = start + PHASE;
    for _ in 0..3 * SESSION {
        phase(&mut c, &mut answering, now);
    }
    assert!(c.is_finished() && c.outcome().failure.is_none());
    assert_eq!(c.records()[0].attempt, 1);
    assert_eq!(c.records()[0].hospitals, 2);
}

#[test]
fn too_few_remaining_hospitals_end_the_federation() {
    let (mut c, start) = coordinator();
    join(&mut c, "a", start);
    join(&mut c, "b", start);
    c.tick(start + JOIN);
    phase(&mut c, &mut [Hospital::new("a")], start + JOIN);
    assert_eq!(c.tick(start + JOIN + PHASE).len(), 1, "finished");
    let failure = c.outcome().failure.unwrap();
    assert_eq!(failure, Failure::TooFewRemain { round: 0, remaining: 1, needed: 2, dropped: vec![node("b")] });
    assert!(failure.to_string().contains("1 hospitals remain after dropping [\"b\"]"), "{failure}");
}

#[test]
fn bad_and_out_of_turn_uploads_are_refused_and_change_nothing() {
    let (mut c, start) = coordinator();
    join(&mut c, "a", start);
    join(&mut c, "b", start);
    c.tick(start + JOIN);
    let session = Some(running(&c));
    let mut a = Hospital::new("a");
    let task = c.task_for(&node("a")).unwrap();
    let (kind, share) = a.answer(&c, &task);
    let commitment = UploadKind::Statement;
    let refused = |c: &mut Coordinator, name: &str, session, kind, bytes: &[u8]| {
        upload(c, name, session, kind, bytes, start).unwrap_err()
    };
    // Another session, phase, node or federation; a stranger; a node that never joined.
    let other = Some(SessionId { round: 5, attempt: 0 });
    assert!(matches!(refused(&mut c, "a", other, kind, &share), Refusal::WrongSession { .. }));
    assert_eq!(
        refused(&mut c, "a", session, UploadKind::Contribution, &share),
        Refusal::WrongPhase { phase: "key generation" }
    );
    assert_eq!(refused(&mut c, "c", session, commitment, &share), Refusal::NotJoined);
    assert_eq!(refused(&mut c, "zz", session, commitment, &share), Refusal::NotEnrolled(node("zz")));
    let posing = UploadHeader { federation_id: "fed".into(), session, node: "b".into(), kind: Some(commitment) };
    let error = c.handle(Event::UploadStarted { node: node("a"), header: posing }, start).unwrap_err();
    assert!(matches!(error, Refusal::NodeMismatch { .. }));
    let foreign = UploadHeader { federation_id: "other".into(), session, node: "a".into(), kind: Some(commitment) };
    let error = c.handle(Event::UploadStarted { node: node("a"), header: foreign }, start).unwrap_err();
    assert_eq!(error, Refusal::UnknownFederation("other".into()));
    // Garbage and a commitment made by another party.
    assert!(matches!(refused(&mut c, "a", session, commitment, &[7; 64]), Refusal::BadStatement(_)));
    let mut b = Hospital::new("b");
    let (_, b_share) = b.answer(&c, &c.task_for(&node("b")).unwrap());
    let posing = refused(&mut c, "a", session, commitment, &b_share);
    assert!(matches!(&posing, Refusal::BadStatement(why) if why.contains("signed by b")), "{posing}");
    // A late joiner is not in the running session.
    join(&mut c, "c", start);
    assert!(matches!(refused(&mut c, "c", session, commitment, &share), Refusal::NotParticipant { .. }));
    // The round is intact: a's commitment is taken once, a duplicate is refused.
    upload(&mut c, "a", session, commitment, &share, start).unwrap();
    assert_eq!(refused(&mut c, "a", session, commitment, &share), Refusal::AlreadyUploaded(node("a")));
    assert_eq!(c.task_for(&node("a")).unwrap().kind, TaskKind::Wait, "a waits for b");
    upload(&mut c, "b", session, commitment, &b_share, start).unwrap();
    assert_eq!(c.task_for(&node("a")).unwrap().kind, TaskKind::Reveal);
    assert_eq!(c.status(&node("c")).unwrap().active, [node("a"), node("b"), node("c")], "c takes part next time");
}

#[test]
fn a_hospital_that_leaves_is_dropped_at_once() {
    let (mut c, start, mut hospitals) = started();
    phases(&mut c, &mut hospitals, 2, start);
    assert_eq!(c.task_for(&node("a")).unwrap().kind, TaskKind::Confirm);
    let leave = Event::Leave {
        node: node("c"),
        federation_id: "fed".into(),
        reason: "too few patients to hold some out".into(),
    };
    c.handle(leave, start).unwrap();
    assert_eq!(running(&c), SessionId { round: 0, attempt: 1 }, "restarted at once, not at the deadline");
    assert_eq!(c.status(&node("a")).unwrap().active, [node("a"), node("b")]);
    assert_eq!(c.task_for(&node("c")).unwrap_err(), Refusal::NotJoined, "it left");
    // It may come back (fixed data) and takes part from the next session.
    join(&mut c, "c", start);
    assert_eq!(c.task_for(&node("c")).unwrap().kind, TaskKind::Wait);
}

#[test]
fn a_participant_that_joins_again_mid_round_restarts_it() {
    let (mut c, start, _) = started();
    // Rejoining before doing anything in the session changes nothing.
    join(&mut c, "b", start);
    assert_eq!(running(&c), SessionId { round: 0, attempt: 0 });
    let mut hospitals = HOSPITALS.map(Hospital::new);
    phase(&mut c, &mut hospitals, start);
    // After its key share, a rejoin means its key share is lost: fresh keys for everyone.
    join(&mut c, "b", start);
    assert_eq!(running(&c), SessionId { round: 0, attempt: 1 });
    assert_eq!(c.status(&node("a")).unwrap().active.len(), 3, "nobody is dropped");
    assert_eq!(c.task_for(&node("b")).unwrap().kind, TaskKind::KeyGen);
    // A second rejoin in the same round (a hospital that would restart every attempt): the round
    // restarts without it, and it takes part again from the next session.
    phase(&mut c, &mut hospitals, start);
    join(&mut c, "b", start);
    assert_eq!(running(&c), SessionId { round: 0, attempt: 2 });
    assert_eq!(c.status(&node("a")).unwrap().active.len(), 2, "b is dropped for this session");
    assert_eq!(c.task_for(&node("b")).unwrap().kind, TaskKind::Wait);
}

#[test]
fn failed_crypto_results_restart_the_round_and_stale_ones_are_ignored() {
    let (mut c, start, _) = started();
    // Key shares and transcripts, then every contribution: the coordinator asks for the
    // aggregate (the action is returned, not carried out).
    let contribute = |c: &mut Coordinator| {
        let mut hospitals = HOSPITALS.map(Hospital::new);
        phases(c, &mut hospitals, 3, start);
        let mut finish = Vec::new();
        for hospital in &mut hospitals {
            let task = c.task_for(&node(hospital.name)).unwrap();
            let (kind, bytes) = hospital.answer(c, &task);
            finish.extend(upload(c, hospital.name, task.session, kind, &bytes, start).unwrap());
        }
        let [Action::FinishAggregate { session, .. }] = finish.as_slice() else { panic!("{finish:?}") };
        *session
    };
    let session = contribute(&mut c);
    assert_eq!(c.task_for(&node("a")).unwrap().kind, TaskKind::Wait, "nothing to do while aggregating");
    assert_eq!(c.next_deadline(), None, "no deadline while the aggregator works");
    let stale = SessionId { round: 0, attempt: 7 };
    c.handle(Event::AggregateReady { session: stale, result: Err(CryptoError::WrongCrs) }, start).unwrap();
    assert_eq!(running(&c), session);
    // A failure of the running session's aggregate restarts it with fresh keys.
    c.handle(Event::AggregateReady { session, result: Err(CryptoError::WrongCrs) }, start).unwrap();
    assert_eq!(running(&c), SessionId { round: 0, attempt: 1 });
    // A round that keeps failing ends the federation.
    for _ in 1..MAX_ATTEMPTS {
        let session = contribute(&mut c);
        c.handle(Event::AggregateReady { session, result: Err(CryptoError::WrongCrs) }, start).unwrap();
    }
    let failure = c.outcome().failure.expect("the federation gave up");
    assert!(matches!(failure, Failure::RoundFailed { round: 0, .. }), "{failure}");
}

#[test]
fn a_snapshot_that_cannot_be_written_ends_the_federation() {
    let (mut c, start, mut hospitals) = started();
    let snapshots = phases(&mut c, &mut hospitals, SESSION, start);
    assert_eq!(snapshots.len(), 2, "the setup session's opened decryption and its result");
    assert_eq!(running(&c).round, 1, "training goes on while the snapshot is written");
    c.handle(Event::Persisted { result: Err("disk full".into()) }, start).unwrap();
    assert_eq!(c.outcome().failure, Some(Failure::Persistence("disk full".into())));
    assert_eq!(c.task_for(&node("a")).unwrap().kind, TaskKind::Failed);
}

#[test]
fn shutdown_abandons_the_running_session() {
    let (mut c, start, _) = started();
    let actions = c.handle(Event::Shutdown, start).unwrap();
    assert!(matches!(actions.as_slice(), [Action::Finished]));
    assert_eq!(c.outcome().failure, Some(Failure::Interrupted));
    assert!(c.status(&node("a")).unwrap().session.is_none());
    // Hospitals are not told the federation failed: they wait and reconnect to the next start.
    assert_eq!(c.task_for(&node("a")).unwrap().kind, TaskKind::Wait);
    assert!(c.all_delivered(), "nothing final to deliver");
    let header =
        UploadHeader { federation_id: "fed".into(), session: None, node: "a".into(), kind: Some(UploadKind::KeyShare) };
    let refusal = c.handle(Event::UploadStarted { node: node("a"), header }, start).unwrap_err();
    assert_eq!(refusal, Refusal::ShuttingDown);
}

#[test]
fn a_checkpoint_resumes_and_a_foreign_one_is_refused() {
    let (mut c, start, mut hospitals) = started();
    let mut snapshots = phases(&mut c, &mut hospitals, 2 * SESSION, start);
    let checkpoint = snapshots.pop().unwrap().checkpoint;
    assert_eq!(checkpoint.next, Some(Planned { round: 2, kind: SessionKind::Evaluate }));
    let resumed = Coordinator::new(plan(), Some(checkpoint.clone()), start, Box::new(|| Crs(9))).unwrap();
    assert_eq!(resumed.records(), c.records());
    assert_eq!(resumed.outcome().global, c.outcome().global);
    let foreign = Checkpoint { federation_id: "another".into(), ..checkpoint.clone() };
    let error = Coordinator::new(plan(), Some(foreign), start, Box::new(|| Crs(9))).unwrap_err();
    assert!(matches!(error, Error::ForeignCheckpoint { .. }), "{error}");
    // The chain of states: the initial state, the setup's output and round 1's.
    assert_eq!(checkpoint.chain.len(), 3);
    let mut unchained = checkpoint.clone();
    unchained.chain.pop();
    let error = Coordinator::new(plan(), Some(unchained), start, Box::new(|| Crs(9))).unwrap_err();
    assert!(matches!(&error, Error::ForeignCheckpoint { found, .. } if found.contains("chain of 2 states")), "{error}");
    let resized = Checkpoint { param_count: 99, ..checkpoint };
    assert!(Coordinator::new(plan(), Some(resized), start, Box::new(|| Crs(9))).is_err());
    assert!(resumed.is_persisted(), "a resumed coordinator has nothing pending");
}

#[test]
fn a_federation_resumed_at_its_end_hands_out_its_final_model() {
    let (mut c, start, mut hospitals) = started();
    let mut snapshots = phases(&mut c, &mut hospitals, 3 * SESSION, start);
    let last = snapshots.pop().unwrap();
    assert_eq!(last.checkpoint.next, None);
    let mut resumed = Coordinator::new(plan(), Some(last.checkpoint), start, Box::new(|| Crs(9))).unwrap();
    assert!(resumed.is_finished());
    let actions = resumed.start();
    let snapshots: Vec<Snapshot> = actions
        .into_iter()
        .filter_map(|a| match a {
            Action::Persist(snapshot) => Some(*snapshot),
            _ => None,
        })
        .collect();
    assert_eq!(snapshots.len(), 1, "the final snapshot is written again");
    acknowledge(&mut resumed, snapshots);
    join(&mut resumed, "a", start);
    assert_eq!(resumed.task_for(&node("a")).unwrap().kind, TaskKind::Done);
}

#[test]
fn a_verified_upload_of_an_abandoned_session_is_refused() {
    let (mut c, start, _) = started();
    let task = c.task_for(&node("a")).unwrap();
    let (kind, bytes) = Hospital::new("a").answer(&c, &task);
    let header =
        UploadHeader { federation_id: "fed".into(), session: task.session, node: "a".into(), kind: Some(kind) };
    let mut actions = c.handle(Event::UploadStarted { node: node("a"), header }, start).unwrap();
    let Some(Action::Verify(ticket)) = actions.pop() else { panic!("no verification asked") };
    let verified = ticket.verify(&bytes, &WireLimits::default()).unwrap();
    // While it was being verified, the session restarted (c left).
    c.handle(Event::Leave { node: node("c"), federation_id: "fed".into(), reason: "gone".into() }, start).unwrap();
    let error = c.handle(Event::UploadVerified { ticket, upload: verified, bytes: 1 }, start).unwrap_err();
    assert!(matches!(error, Refusal::WrongSession { .. }), "{error}");
}

#[test]
fn a_hospital_that_rejoins_takes_the_state_only_with_its_peers_endorsements() {
    let (mut c, start, mut hospitals) = started();
    phases(&mut c, &mut hospitals, SESSION, start);
    assert_eq!(c.records().len(), 1, "setup done");
    // Every hospital endorsed the state: it is referred to by its digest.
    let task = c.task_for(&node("a")).unwrap();
    assert_eq!(task.kind, TaskKind::KeyGen);
    phases(&mut c, &mut hospitals, 2, start);
    let confirm = c.task_for(&node("a")).unwrap();
    assert_eq!((confirm.kind, confirm.sections.len()), (TaskKind::Confirm, 2));

    // "c" lost its state before round 1's key generation: a fresh participant, an empty ledger.
    let (mut c, start, mut hospitals) = started();
    phases(&mut c, &mut hospitals, SESSION, start);
    hospitals[2].inner.lose_state();
    assert!(join(&mut c, "c", start).is_empty(), "it had not started the session yet");
    phases(&mut c, &mut hospitals, 2, start);
    let mut confirm = c.task_for(&node("c")).unwrap();
    assert_eq!(confirm.sections.len(), 5, "the model, the server state, their endorsements and the chain before");
    // The state's chain: the initial state before the setup's output. Another history, or one
    // cut short, makes it another state than the one endorsed.
    let path = confirm.sections[4].clone();
    assert_eq!(path.len(), 32, "the initial state's content");
    for other in [Bytes::new(), Bytes::from(vec![7; 32]), path.slice(..31)] {
        let mut forked = confirm.clone();
        forked.sections[4] = other;
        let refused = hospitals[2].try_answer(&c, &forked).unwrap_err();
        let expected = if forked.sections[4].len() == 31 { "chain of states" } else { "another federation state" };
        assert!(refused.to_string().contains(expected), "{refused}");
    }
    // Without the endorsements, or with those of another state, it refuses.
    let endorsements = confirm.sections[3].clone();
    confirm.sections[3] = Bytes::new();
    let refused = hospitals[2].try_answer(&c, &confirm).unwrap_err();
    assert!(refused.to_string().contains("carries no endorsements"), "{refused}");
    confirm.sections[3] = endorsements;
    let mut forged = confirm.clone();
    forged.figures.train_rows += 1;
    let refused = hospitals[2].try_answer(&c, &forged).unwrap_err();
    assert!(refused.to_string().contains("another federation state"), "{refused}");
    // With them it goes on, and the federation finishes.
    for _ in 0..3 * SESSION {
        phase(&mut c, &mut hospitals, start);
    }
    assert!(c.is_finished() && c.outcome().failure.is_none(), "{:?}", c.outcome().failure);
}

/// The last snapshot that opened a decryption (of round 1's training session).
fn opened_checkpoint(snapshots: &[Snapshot]) -> Checkpoint {
    let opened = snapshots.iter().rev().find(|s| s.checkpoint.opened.is_some()).unwrap().checkpoint.clone();
    assert_eq!(opened.opened, Some(Planned { round: 1, kind: SessionKind::Train }));
    opened
}

/// A coordinator resumed from the opened checkpoint of `snapshots`, every hospital joined again.
fn resume(snapshots: &[Snapshot], start: Instant) -> Coordinator {
    let mut resumed = Coordinator::new(plan(), Some(opened_checkpoint(snapshots)), start, Box::new(|| Crs(9))).unwrap();
    all_join(&mut resumed, start);
    resumed.tick(start);
    resumed
}

#[test]
fn a_resumed_opened_session_finishes_from_the_hospitals_sums_only_when_every_one_holds_it() {
    // Round 1 up to its attestation (its decrypted sum went out), then the aggregator stops.
    let (mut c, start, mut hospitals) = started();
    let snapshots = phases(&mut c, &mut hospitals, SESSION + 8, start);
    let mut resumed = resume(&snapshots, start);
    assert_eq!(resumed.task_for(&node("a")).unwrap().kind, TaskKind::Recover);
    phases(&mut resumed, &mut hospitals, 4 + SESSION, start);
    assert!(resumed.is_finished() && resumed.outcome().failure.is_none(), "{:?}", resumed.outcome().failure);
    let sessions: Vec<(u32, u32)> = resumed.records().iter().map(|r| (r.round, r.attempt)).collect();
    assert_eq!(sessions, [(0, 0), (1, 0), (2, 0)], "round 1 finished from the recovered sum");
    // The same model as without the stop (the uninterrupted coordinator, same hospitals' sums).
    let (mut uninterrupted, start, mut others) = started();
    phases(&mut uninterrupted, &mut others, 3 * SESSION, start);
    assert_eq!(resumed.outcome().global, uninterrupted.outcome().global);

    // Round 1 finished and hospital a already began the next session when the aggregator
    // stopped, before round 1's result was written: a no longer holds round 1, so it is given up.
    let (mut c, start, mut hospitals) = started();
    let snapshots = phases(&mut c, &mut hospitals, 2 * SESSION, start);
    let task = c.task_for(&node("a")).unwrap();
    assert_eq!(task.kind, TaskKind::KeyGen);
    hospitals[0].answer(&c, &task);
    let mut resumed = resume(&snapshots, start);
    phases(&mut resumed, &mut hospitals, 1 + SESSION, start);
    assert!(resumed.is_finished() && resumed.outcome().failure.is_none(), "{:?}", resumed.outcome().failure);
    let kinds: Vec<SessionKind> = resumed.records().iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [SessionKind::Setup, SessionKind::Evaluate], "round 1 given up, nothing decrypted twice");

    // Every hospital holds round 1's sum, but c hands back a forged copy (one value moved): a
    // later copy never replaces the first, the two disagree, and round 1 is given up.
    let (mut c, start, mut hospitals) = started();
    let snapshots = phases(&mut c, &mut hospitals, SESSION + 8, start);
    let mut resumed = resume(&snapshots, start);
    for hospital in &mut hospitals {
        let task = resumed.task_for(&node(hospital.name)).unwrap();
        assert_eq!(task.kind, TaskKind::Recover);
        let (kind, mut bytes) = hospital.answer(&resumed, &task);
        if hospital.name == "c" {
            let envelope = fedcare_crypto::wire::FORMAT;
            let mut payload = envelope.open(&bytes, usize::MAX).unwrap().to_vec();
            // params id (2), kind (1), CRS (16), aggregate digest (32), contributors (2), length (8).
            payload[2 + 1 + 16 + 32 + 2 + 8] ^= 1;
            bytes = envelope.seal(&payload).unwrap();
        }
        let actions = upload(&mut resumed, hospital.name, task.session, kind, &bytes, start).unwrap();
        carry_out(&mut resumed, actions, start);
    }
    phases(&mut resumed, &mut hospitals, SESSION, start);
    assert!(resumed.is_finished() && resumed.outcome().failure.is_none(), "{:?}", resumed.outcome().failure);
    let kinds: Vec<SessionKind> = resumed.records().iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [SessionKind::Setup, SessionKind::Evaluate], "round 1 given up, the forged copy never used");
}

#[test]
fn a_dropped_hospital_that_asks_again_takes_part_from_the_next_session_with_the_endorsed_state() {
    let (mut c, start, mut hospitals) = started();
    phases(&mut c, &mut hospitals, SESSION, start);
    assert_eq!(c.records().len(), 1, "setup done");
    // Round 1: "c" falls silent (a partition) and is dropped at the deadline.
    phase(&mut c, &mut hospitals[..2], start);
    c.tick(start + PHASE);
    assert_eq!(running(&c), SessionId { round: 1, attempt: 1 });
    assert!(!c.status(&node("a")).unwrap().active.contains(&node("c")));
    // Asking for a task while the round runs without it changes nothing for that round...
    c.handle(Event::Asked { node: node("c") }, start + PHASE).unwrap();
    assert_eq!(c.task_for(&node("c")).unwrap().kind, TaskKind::Wait);
    let now = start + PHASE;
    phases(&mut c, &mut hospitals[..2], SESSION, now);
    assert_eq!(c.records().len(), 2, "round 1 done without c");
    assert_eq!(c.records()[1].hospitals, 2);
    // ...and it takes part in round 2: it missed round 1's output, so it is sent the state with
    // the endorsements of a and b (a later session than the one it checked), and takes it.
    assert_eq!(c.status(&node("a")).unwrap().active, [node("a"), node("b"), node("c")]);
    phases(&mut c, &mut hospitals, 2, now);
    let confirm = c.task_for(&node("c")).unwrap();
    assert_eq!((confirm.kind, confirm.sections.len()), (TaskKind::Confirm, 5));
    for _ in 0..3 * SESSION {
        phase(&mut c, &mut hospitals, now);
    }
    assert!(c.is_finished() && c.outcome().failure.is_none(), "{:?}", c.outcome().failure);
    assert_eq!(c.records()[2].hospitals, 3, "round 2 with c again");
}

#[test]
fn a_streamed_contribution_that_breaks_off_midway_restarts_the_round() {
    let (mut c, start, mut hospitals) = started();
    phases(&mut c, &mut hospitals, 3, start);
    // Hospital a streams its contribution as the shell does, a piece at a time; the stream
    // stops halfway, after words went into the sum.
    let task = c.task_for(&node("a")).unwrap();
    let (kind, bytes) = hospitals[0].answer(&c, &task);
    let header =
        UploadHeader { federation_id: "fed".into(), session: task.session, node: "a".into(), kind: Some(kind) };
    let mut actions = c.handle(Event::UploadStarted { node: node("a"), header }, start).unwrap();
    let Some(Action::Verify(ticket)) = actions.pop() else { panic!("no verification asked") };
    let (party, builder) = ticket.contribution().expect("a contribution is streamed");
    let mut stream = builder.begin(party.clone()).unwrap();
    builder.add_piece(&mut stream, &bytes[..bytes.len() / 2]).unwrap();
    let why = builder.abandon(&party, "the connection closed").expect("the sum is broken");
    // Another hospital's contribution is refused now, and the round restarts with fresh keys.
    let task_b = c.task_for(&node("b")).unwrap();
    let (kind_b, bytes_b) = hospitals[1].answer(&c, &task_b);
    assert!(upload(&mut c, "b", task_b.session, kind_b, &bytes_b, start).is_err());
    let session = task.session.unwrap();
    c.handle(Event::AggregateBroken { session, node: node("a"), why }, start).unwrap();
    assert_eq!(running(&c), SessionId { round: session.round, attempt: session.attempt + 1 });
    // The next attempt runs without the hospital whose stream broke: it cannot break them all.
    let status = c.status(&node("b")).unwrap();
    assert_eq!(status.active.len(), 2, "a is dropped for this session");
    assert_eq!(c.task_for(&node("a")).unwrap().kind, TaskKind::Wait);
    let before = c.records().len();
    phases(&mut c, &mut hospitals[1..], SESSION, start);
    assert_eq!(c.records().len(), before + 1, "the round finishes without a");
    assert_eq!(c.records().last().unwrap().hospitals, 2);
}

/// A random source that fails is an error where the participant draws from it (its key share at
/// the key generation, its challenge randomness at the two commitments), never a default: nothing
/// is uploaded and the state stays as it was, so the session completes with a working source.
#[test]
fn a_failing_random_source_is_an_error_and_changes_nothing() {
    let (mut c, start, mut hospitals) = started();
    let draws = [TaskKind::KeyGen, TaskKind::Challenge, TaskKind::Result];
    let mut failed = Vec::new();
    for _ in 0..SESSION {
        let task = c.task_for(&node("a")).unwrap();
        if draws.contains(&task.kind) {
            let why = match hospitals[0].participant(&c).handle(&task, &mut driver::FailingRng) {
                Err(Error::Crypto(fedcare_crypto::CryptoError::Random(why)) | Error::Random(why)) => why,
                Err(other) => panic!("the {} step: {other}", task.kind),
                Ok(_) => panic!("the {} step drew no randomness", task.kind),
            };
            assert!(why.contains("no random source"), "{why}");
            failed.push(task.kind);
        }
        phase(&mut c, &mut hospitals, start);
    }
    assert_eq!(failed, draws);
    assert_eq!(c.records().len(), 1, "the session completed after the failures");
}

/// The participant as a state machine: at every step of a session, a task of any other step
/// (the same session, the task's own sections) finds no state that takes it and is refused as
/// out of order, and the refusal leaves the state as it was (the session then completes).
#[test]
fn each_step_is_taken_only_in_its_state_and_a_refusal_changes_nothing() {
    let steps = [
        TaskKind::Reveal,
        TaskKind::Confirm,
        TaskKind::Contribute,
        TaskKind::Challenge,
        TaskKind::Prove,
        TaskKind::Decrypt,
        TaskKind::Result,
        TaskKind::Attest,
        TaskKind::Accept,
    ];
    let (mut c, start, mut hospitals) = started();
    let mut refused = 0;
    for _ in 0..SESSION {
        let task = c.task_for(&node("a")).unwrap();
        // From the decryption share on, a `Result` of the same session is taken again (an
        // aggregator that restarted hands the sum out anew).
        let decrypted = matches!(task.kind, TaskKind::Result | TaskKind::Attest | TaskKind::Accept);
        for &other in steps.iter().filter(|&&k| k != task.kind && !(decrypted && k == TaskKind::Result)) {
            let wrong = Task { kind: other, ..task.clone() };
            let error = hospitals[0].try_answer(&c, &wrong).unwrap_err();
            assert!(
                matches!(error, Error::Trust(TrustError::OutOfOrder { .. })),
                "a {other:?} task during the {:?} step: {error}",
                task.kind
            );
            refused += 1;
        }
        // Encryption is taken only once every participant agreed.
        let error = hospitals[0].participant(&c).contribute(task.session.unwrap(), &[0; 4]).unwrap_err();
        assert!(matches!(error, Error::Trust(TrustError::OutOfOrder { step: TaskKind::Contribute })));
        phase(&mut c, &mut hospitals, start);
    }
    // Nine at the key generation, eight at the next seven steps, seven at the last two (where
    // the result is taken again).
    assert_eq!(refused, 9 + 7 * 8 + 2 * 7);
    assert_eq!(c.records().len(), 1, "the session completed after all the refusals");
    // After its output is endorsed, every step of the session but the result is refused.
    let done = Task {
        kind: TaskKind::Accept,
        session: Some(SessionId { round: 0, attempt: 0 }),
        session_kind: Some(SessionKind::Setup),
        crs: Some(Crs(1)),
        figures: PublicFigures::default(),
        sections: vec![Bytes::new()],
        message: String::new(),
    };
    for &other in steps.iter().filter(|&&k| k != TaskKind::Result) {
        let error = hospitals[0].try_answer(&c, &Task { kind: other, ..done.clone() }).unwrap_err();
        assert!(matches!(error, Error::Trust(TrustError::OutOfOrder { .. })), "{other:?}: {error}");
    }
}
