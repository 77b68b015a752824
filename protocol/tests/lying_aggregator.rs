//! A lying aggregator against honest hospitals, in memory: the real coordinator and the real
//! participants of the driver ([`fedcare_protocol::driver`]), each attack a filter on the tasks
//! between them. Each test checks that every honest hospital refuses, names the reason, and —
//! before it refuses — has released nothing that decrypts one hospital's data: no decryption
//! share was made for the attacked session (its ledger holds no slot of it).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use fedcare_core::privacy::{DpSgd, PooledNoise};
use fedcare_crypto::{CryptoError, WireMessage};
use fedcare_protocol::driver::{Driver, Ending, TaskFilter, TestKey, test_settings};
use fedcare_protocol::ledger::Release;
use fedcare_protocol::output::server_bytes;
use fedcare_protocol::params::params_to_bytes;
use fedcare_protocol::selection::{BestModel, ServerState};
use fedcare_protocol::signing::Signed;
use fedcare_protocol::transcript::{Claim, Statement, decode_bundle, encode_bundle, encode_chain, endorsements};
use fedcare_protocol::{
    Error, FederationSettings, JobKind, NodeId, Privacy, SessionId, SessionKind, Task, TaskKind, TrustError,
};

const HOSPITALS: [&str; 3] = ["hospital-a", "hospital-b", "hospital-c"];
/// A consortium of five, for the majority rules.
const FIVE: [&str; 5] = ["hospital-a", "hospital-b", "hospital-c", "hospital-d", "hospital-e"];
/// Enough phases for setup, the training rounds and the evaluation, with room to spare.
const PHASES: usize = 80;

/// The tests' base instant: time moves only as a test says.
#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    Instant::now()
}

/// A federation of [`HOSPITALS`] (and `strangers`, enrolled by the aggregator but on no
/// hospital's roster) over `rounds` training rounds, every hospital needed (so the first refusal
/// ends it: each hospital meets the lie in the same session), with `filter` in the aggregator.
fn federation(filter: Option<TaskFilter>, rounds: u32, strangers: &[&str]) -> Driver {
    let mut settings = test_settings(rounds);
    settings.min_hospitals = HOSPITALS.len();
    let mut driver = Driver::with_strangers(&HOSPITALS, strangers, settings, filter, now());
    driver.run(PHASES);
    driver
}

/// A filter that rewrites the tasks of `kind` with `lie`.
fn lie_on(kind: TaskKind, mut lie: impl FnMut(&NodeId, &mut Task) + 'static) -> Option<TaskFilter> {
    Some(Box::new(move |node, task| {
        if task.kind == kind {
            lie(node, task)
        }
    }))
}

/// Every hospital refused with an error that `expected` accepts, or was stopped because the
/// federation ended when the first refusal made it too small (it then never met the lie, and
/// released nothing either); at least one refused.
fn all_refused(driver: &Driver, expected: impl Fn(&Error) -> bool) {
    let mut refused = 0;
    for (hospital, ending) in driver.hospitals.iter().zip(&driver.endings).take(HOSPITALS.len()) {
        match ending {
            Ending::Refused(error) if expected(error) => refused += 1,
            Ending::Stopped(why) if why.contains("hospitals remain") => {}
            other => panic!("{}: expected a refusal, got {other:?}", hospital.name),
        }
    }
    assert!(refused > 0, "no hospital refused: {:?}", driver.endings);
}

/// No hospital made a decryption share for any session but `slots` (round, kind).
fn ledgers_hold_only(driver: &Driver, slots: &[(u32, SessionKind)]) {
    for hospital in driver.hospitals.iter().take(HOSPITALS.len()) {
        let held: Vec<(u32, SessionKind)> =
            hospital.ledger().iter().map(|r: &Release| (r.slot.round, r.slot.kind)).collect();
        assert_eq!(held, slots, "{}'s ledger", hospital.name);
    }
}

/// The wire payload of a crypto message (inside its envelope), changed by `change`.
fn rewrap(bytes: &Bytes, change: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    let envelope = fedcare_crypto::wire::FORMAT;
    let mut payload = envelope.open(bytes, usize::MAX).unwrap().to_vec();
    change(&mut payload);
    Bytes::from(envelope.seal(&payload).unwrap())
}

#[test]
fn an_honest_federation_completes_and_its_model_file_is_endorsed_by_every_hospital() {
    let driver = federation(None, 1, &[]);
    assert!(driver.endings.iter().all(|e| matches!(e, Ending::Done)), "{:?}", driver.endings);
    let setup = (0, SessionKind::Setup);
    ledgers_hold_only(&driver, &[setup, (1, SessionKind::Train), (2, SessionKind::Evaluate)]);
    let last = driver.snapshots.last().unwrap();
    let signers: Vec<String> =
        endorsements(&last.model).unwrap().iter().map(|(signed, _)| signed.signer.to_string()).collect();
    assert_eq!(signers, HOSPITALS);
}

#[test]
fn a_collective_key_from_a_substituted_share_is_refused() {
    // The aggregator replaces hospital-a's key share with one of its own making, under
    // hospital-a's name: a key it could decrypt everything with.
    let liar = Arc::new(TestKey::generate());
    let driver = federation(
        lie_on(TaskKind::Confirm, move |_, task| {
            let mut bundle = decode_bundle(&task.sections[0]).unwrap();
            if let Some(own) = bundle.iter_mut().find(|s| s.signer.as_str() == "hospital-a") {
                let mut statement = Statement::of(own).unwrap();
                if let Claim::KeyShare(bytes) = &mut statement.claim {
                    bytes[40] ^= 1;
                }
                *own = statement.sign(&own.signer, liar.as_ref()).unwrap();
            }
            task.sections[0] = encode_bundle(&bundle);
        }),
        1,
        &[],
    );
    all_refused(&driver, |e| matches!(e, Error::Trust(TrustError::KeyMismatch { name, .. }) if name == "hospital-a"));
    ledgers_hold_only(&driver, &[]);

    // Relabelled with the real key but changed bytes: the signature breaks.
    let driver = federation(
        lie_on(TaskKind::Confirm, |_, task| {
            let mut bundle = decode_bundle(&task.sections[0]).unwrap();
            if let Some(own) = bundle.iter_mut().find(|s| s.signer.as_str() == "hospital-b") {
                let at = own.message.len() - 100;
                own.message[at] ^= 1;
            }
            task.sections[0] = encode_bundle(&bundle);
        }),
        1,
        &[],
    );
    all_refused(
        &driver,
        |e| matches!(e, Error::Trust(TrustError::BadSignature { signer }) if signer.as_str() == "hospital-b"),
    );
    ledgers_hold_only(&driver, &[]);
}

#[test]
fn masks_with_one_coefficient_changed_are_refused_before_any_decryption_share() {
    // Δ·2^6 added to one coefficient of the honest mask sum: one decryption would give the sum
    // in the low bits and the collective secret key in the high bits.
    let driver = federation(
        lie_on(TaskKind::Challenge, |_, task| {
            task.sections[0] = rewrap(&task.sections[0], |payload| {
                // The payload ends with the masks (8 bytes each) and then one carry byte per
                // mask coefficient: one bin of 8192 coefficients for this model.
                let at = payload.len() - 8192 - 8;
                let word = u64::from_le_bytes(payload[at..at + 8].try_into().unwrap()).wrapping_add(1 << 40);
                payload[at..at + 8].copy_from_slice(&word.to_le_bytes());
            });
        }),
        1,
        &[],
    );
    all_refused(&driver, |e| matches!(e, Error::Crypto(CryptoError::ForgedMasks)));
    ledgers_hold_only(&driver, &[]);
}

#[test]
fn different_views_of_the_round_are_caught_by_the_signed_transcript() {
    // hospital-b is told the federation has a thousand times more rows: its update would be
    // rounded to nothing and the decrypted sum would be the others' alone.
    let driver = federation(
        lie_on(TaskKind::Confirm, |node, task| {
            if node.as_str() == "hospital-b" && task.figures.train_rows > 0 {
                task.figures.train_rows *= 1000;
            }
        }),
        1,
        &[],
    );
    // The others see hospital-b's transcript differ; hospital-b itself sees figures that are not
    // the ones it computed from the setup session's checked sum.
    all_refused(&driver, |e| {
        matches!(e, Error::Trust(TrustError::TranscriptMismatch { .. } | TrustError::OutputMismatch { .. }))
    });
    // The setup session (before the lie) decrypted normally; round 1 never reached decryption.
    ledgers_hold_only(&driver, &[(0, SessionKind::Setup)]);
}

#[test]
fn a_round_run_again_after_its_decryption_is_refused() {
    // Once round 1 is decrypted, the aggregator starts round 1 again (a new attempt) instead of
    // round 2: a second decryption of the same round over another set of hospitals would give
    // the difference of the two sums.
    let driver = federation(
        lie_on(TaskKind::KeyGen, |_, task| {
            if task.session.is_some_and(|s| s.round == 2) {
                task.session = Some(SessionId { round: 1, attempt: 1 });
                task.session_kind = Some(SessionKind::Train);
            }
        }),
        2,
        &[],
    );
    all_refused(&driver, |e| matches!(e, Error::Trust(TrustError::SlotSpent { round: 1, .. })));
    ledgers_hold_only(&driver, &[(0, SessionKind::Setup), (1, SessionKind::Train)]);
}

#[test]
fn statements_of_another_session_are_refused() {
    // The aggregator keeps the setup session's signed key shares and relays them again in
    // round 1, as if they were fresh.
    let kept: Arc<Mutex<Option<Bytes>>> = Arc::default();
    let driver = federation(
        lie_on(TaskKind::Confirm, move |_, task| {
            let mut kept = kept.lock().unwrap();
            match (&*kept, task.session.unwrap().round) {
                (None, 0) => *kept = Some(task.sections[0].clone()),
                (Some(old), 1) => task.sections[0] = old.clone(),
                _ => {}
            }
        }),
        1,
        &[],
    );
    all_refused(
        &driver,
        |e| matches!(e, Error::Trust(TrustError::WrongStatement { why, .. }) if why.contains("session 0.0")),
    );
    ledgers_hold_only(&driver, &[(0, SessionKind::Setup)]);
}

#[test]
fn a_participant_the_aggregator_enrolls_but_no_roster_lists_is_refused() {
    // "mallory" is enrolled by the aggregator, but no hospital's own roster lists it.
    let driver = federation(None, 1, &["mallory"]);
    all_refused(&driver, |e| matches!(e, Error::Trust(TrustError::NotOnRoster { name }) if name == "mallory"));
    ledgers_hold_only(&driver, &[]);
}

#[test]
fn a_forged_decrypted_sum_is_refused_by_every_hospital() {
    // params id (2), kind (1), CRS (16), aggregate digest (32), contributors (2), length (8),
    // then the values.
    const FIRST_VALUE: usize = 2 + 1 + 16 + 32 + 2 + 8;
    // The aggregator hands out the setup session's decrypted sum with one value moved by one
    // unit of Δ: other row counts, other statistics, and so another model later.
    let driver = federation(
        lie_on(TaskKind::Result, |_, task| {
            task.sections[0] = rewrap(&task.sections[0], |payload| {
                let at = FIRST_VALUE;
                let word = u64::from_le_bytes(payload[at..at + 8].try_into().unwrap()).wrapping_add(1 << 34);
                payload[at..at + 8].copy_from_slice(&word.to_le_bytes());
            });
        }),
        1,
        &[],
    );
    all_refused(&driver, |e| matches!(e, Error::Crypto(CryptoError::ForgedSum)));
    // The shares of the checked masks were released (that decrypts only the sum); nothing else.
    ledgers_hold_only(&driver, &[(0, SessionKind::Setup)]);

    // One hospital shown another sum than the others: caught when the commitments are relayed.
    let driver = federation(
        lie_on(TaskKind::Result, |node, task| {
            if node.as_str() == "hospital-c" {
                task.sections[0] = rewrap(&task.sections[0], |payload| payload[FIRST_VALUE] ^= 1);
            }
        }),
        1,
        &[],
    );
    all_refused(
        &driver,
        |e| matches!(e, Error::Trust(TrustError::WrongStatement { why, .. }) if why.contains("decrypted sum")),
    );
}

#[test]
fn a_tampered_final_model_is_refused_and_its_endorsements_say_so() {
    // One parameter changed in the final model every hospital is handed.
    let tamper = |bytes: &[u8]| {
        let mut file = fedcare_core::ModelFile::from_bytes(bytes).unwrap();
        file.params[0] += 0.5;
        Bytes::from(file.to_bytes().unwrap())
    };
    let driver =
        federation(lie_on(TaskKind::Done, move |_, task| task.sections[0] = tamper(&task.sections[0])), 1, &[]);
    all_refused(
        &driver,
        |e| matches!(e, Error::Trust(TrustError::NotEndorsed { why }) if why.contains("another model file")),
    );
    let honest = &driver.snapshots.last().unwrap().model;
    let mut tampered = honest.clone();
    tampered.params[0] += 0.5;
    assert!(
        matches!(endorsements(&tampered), Err(TrustError::NotEndorsed { why }) if why.contains("another model file"))
    );
}

/// Four hospitals, three needed: one may leave and the federation goes on without it.
const FOUR: [&str; 4] = ["hospital-a", "hospital-b", "hospital-c", "hospital-d"];

/// A federation of [`FOUR`] over `rounds` training rounds, three of them needed, `filter` in the
/// aggregator.
fn four(rounds: u32, filter: TaskFilter) -> Driver {
    let mut settings = test_settings(rounds);
    settings.min_hospitals = 3;
    let mut driver = Driver::new(&FOUR, settings, Some(filter), now());
    driver.run(PHASES);
    driver
}

/// The (round, kind) of every release of each hospital.
fn releases(driver: &Driver) -> Vec<Vec<(u32, SessionKind)>> {
    driver
        .hospitals
        .iter()
        .map(|h| h.ledger().iter().map(|r: &Release| (r.slot.round, r.slot.kind)).collect())
        .collect()
}

/// A Confirm task's start state as the aggregator relayed it: the model, server state and
/// endorsement sections (or the state's digest alone, to a hospital that holds it), and the
/// public figures.
type StartState = (Vec<Bytes>, fedcare_protocol::PublicFigures);

/// A filter that keeps the start state of round `from`'s Confirm tasks and relays it instead in
/// the Confirm tasks of every session `when` picks (relabelled by `relabel` first).
fn start_again(
    from: u32,
    when: impl Fn(&NodeId, SessionId) -> bool + 'static,
    relabel: impl Fn(&mut Task) + 'static,
) -> impl FnMut(&NodeId, &mut Task) {
    let kept: Arc<Mutex<Option<StartState>>> = Arc::default();
    move |node, task| {
        let Some(session) = task.session else { return };
        if session.round == from && session.attempt == 0 && task.kind == TaskKind::Confirm {
            kept.lock().unwrap().get_or_insert_with(|| (task.sections[1..].to_vec(), task.figures.clone()));
        }
        if !when(node, session) {
            return;
        }
        relabel(task);
        if task.kind == TaskKind::Confirm {
            let (start, figures) = kept.lock().unwrap().clone().expect("the earlier session ran");
            task.sections.truncate(1);
            task.sections.extend(start);
            task.figures = figures;
        }
    }
}

#[test]
fn a_start_state_released_from_is_refused_with_another_set_whatever_the_session_is_called() {
    // Attacks 2 and 3: round 1's sum is released over all four hospitals. The aggregator makes
    // hospital-d leave in round 2 (it corrupts d's confirmation) and runs round 2's next attempt
    // over the other three from round 1's start state, as if it had given round 1 up: the
    // difference of the two sums would be d's exact update.
    let mut again = start_again(1, |_, s| s.round == 2 && s.attempt == 1, |_| {});
    let driver = four(
        2,
        Box::new(move |node, task| {
            let round_2 = task.session.is_some_and(|s| s.round == 2 && s.attempt == 0);
            if round_2 && task.kind == TaskKind::Confirm && node.as_str() == "hospital-d" {
                task.sections[0] = Bytes::from_static(b"not a bundle");
            }
            again(node, task);
        }),
    );
    // The first to refuse leaves the other two too few: they are stopped before they meet it.
    let mut refused = 0;
    for (hospital, ending) in driver.hospitals.iter().zip(&driver.endings).take(3) {
        match ending {
            Ending::Refused(Error::Trust(TrustError::StartReused { earlier_round: 1, earlier, now, .. })) => {
                assert_eq!((earlier.len(), now.len()), (4, 3), "{}", hospital.name);
                refused += 1;
            }
            Ending::Stopped(why) if why.contains("hospitals remain") => {}
            other => panic!("{}: expected a refusal of the reused start state, got {other:?}", hospital.name),
        }
    }
    assert!(refused > 0, "{:?}", driver.endings);
    assert!(matches!(driver.endings[3], Ending::Refused(Error::Protocol(_))), "{:?}", driver.endings[3]);
    let both = vec![(0, SessionKind::Setup), (1, SessionKind::Train)];
    assert_eq!(releases(&driver), vec![both; 4], "nothing released twice from one state");
}

/// Every hospital refused with [`TrustError::OffSchedule`] naming `why`.
fn off_schedule(driver: &Driver, why: &str) {
    all_refused(driver, |e| matches!(e, Error::Trust(TrustError::OffSchedule { why: w, .. }) if w.contains(why)));
}

#[test]
fn a_relabelled_session_the_schedule_does_not_hold_is_refused() {
    // Attack 3: round 1 of a training job relabelled as an exploration (its exact rows and
    // positives), as a second setup (its counts, moments and buckets over another set), or as
    // a setup in its own round 0 (a ledger slot spent); nothing of round 1 is released.
    for (relabel, why) in [
        (SessionKind::Explore, "train job of 1 rounds has no explore session in round 1"),
        (SessionKind::Setup, "no setup session in round 1"),
    ] {
        let driver = federation(
            Some(Box::new(move |_, task| {
                if task.session.is_some_and(|s| s.round == 1) {
                    task.session_kind = Some(relabel);
                }
            })),
            1,
            &[],
        );
        off_schedule(&driver, why);
        ledgers_hold_only(&driver, &[(0, SessionKind::Setup)]);
    }
    let driver = federation(
        Some(Box::new(|_, task| {
            if let Some(session) = task.session.as_mut().filter(|s| s.round == 1) {
                session.round = 0;
                task.session_kind = Some(SessionKind::Setup);
            }
        })),
        1,
        &[],
    );
    all_refused(&driver, |e| matches!(e, Error::Trust(TrustError::SlotSpent { round: 0, .. })));
    ledgers_hold_only(&driver, &[(0, SessionKind::Setup)]);
}

#[test]
fn a_session_from_before_the_setup_or_back_in_the_chain_is_refused() {
    // Round 1 from the state the setup started from (the initial model, no figures: the same
    // model as after the setup, under another digest).
    let driver = federation(Some(Box::new(start_again(0, |_, s| s.round == 1, |_| {}))), 1, &[]);
    off_schedule(&driver, "the state session 0.0 (setup) started from");
    ledgers_hold_only(&driver, &[(0, SessionKind::Setup)]);

    // Round 2 relabelled as an evaluation in round 1 (a round number going back along the chain),
    // its key shares and confirmation relayed as the liar makes them.
    let mut settings = test_settings(2);
    settings.min_hospitals = HOSPITALS.len();
    let mut driver = Driver::new(&HOSPITALS, settings.clone(), None, now());
    let a = NodeId::new("hospital-a").unwrap();
    run_until_key_gen(&mut driver, 2);
    let key_gen = driver.coordinator.task_for(&a).unwrap();
    driver.phase(); // round 2's key-share commitments
    let reveal = driver.coordinator.task_for(&a).unwrap();
    driver.phase(); // round 2's key shares: the coordinator then hands out its confirmation
    let mut confirm = driver.coordinator.task_for(&a).unwrap();
    assert_eq!((reveal.kind, confirm.kind), (TaskKind::Reveal, TaskKind::Confirm));
    let relabel = |task: &Task| {
        let mut task = task.clone();
        task.session = Some(SessionId { round: 1, attempt: 0 });
        task.session_kind = Some(SessionKind::Evaluate);
        task
    };
    // Every hospital answers the relabelled step; the liar relays the signed answers as the
    // next step's section.
    let mut relay = |task: &Task| -> Bytes {
        let signed: Vec<Signed> =
            driver.hospitals.iter_mut().map(|h| postcard::from_bytes(&h.answer(&settings, task).1).unwrap()).collect();
        encode_bundle(&signed)
    };
    let commitments = relay(&relabel(&key_gen));
    let mut reveal = relabel(&reveal);
    reveal.sections[0] = commitments;
    let shares = relay(&reveal);
    confirm = relabel(&confirm);
    confirm.sections[0] = shares;
    for hospital in &mut driver.hospitals {
        let refused = hospital.try_answer(&settings, &confirm).unwrap_err();
        assert!(
            matches!(&refused, Error::Trust(TrustError::OffSchedule { why, .. }) if why.contains("rounds go forward")),
            "{}: {refused}",
            hospital.name
        );
    }
    ledgers_hold_only(&driver, &[(0, SessionKind::Setup), (1, SessionKind::Train)]);
}

/// Runs `driver` until hospital-a's next task is round `round`'s key generation.
fn run_until_key_gen(driver: &mut Driver, round: u32) {
    let a = NodeId::new("hospital-a").unwrap();
    for _ in 0..PHASES {
        let task = driver.coordinator.task_for(&a).unwrap();
        if task.kind == TaskKind::KeyGen && task.session.is_some_and(|s| s.round == round) {
            return;
        }
        driver.phase();
    }
    panic!("round {round} never started: {:?}", driver.endings);
}

#[test]
fn a_restarted_hospital_refuses_what_it_refused_before() {
    // Attack 7 across restarts: every hospital restarts (and joins again) before round 1 and
    // again before round 3. The aggregator runs round 3 from the setup's output, which the roster
    // endorsed and which each hospital was sent whole after its first restart: a rollback past
    // rounds 1 and 2 that a hospital holding its chain of states in memory only would take after
    // a restart. Each resumes its schedule from its ledger and refuses, as it would have without
    // the restart; nothing of round 3 is released.
    let mut settings = test_settings(3);
    settings.min_hospitals = HOSPITALS.len();
    let filter = start_again(1, |_, s| s.round == 3, |_| {});
    let mut driver = Driver::new(&HOSPITALS, settings, Some(Box::new(filter)), now());
    for round in [1, 3] {
        run_until_key_gen(&mut driver, round);
        for index in 0..HOSPITALS.len() {
            driver.restart(index);
        }
    }
    driver.run(PHASES);
    all_refused(&driver, |e| {
        matches!(
            e,
            Error::Trust(TrustError::NotDescended {
                endorsed: SessionId { round: 0, .. },
                own: SessionId { round: 2, .. },
                ..
            })
        )
    });
    ledgers_hold_only(&driver, &[(0, SessionKind::Setup), (1, SessionKind::Train), (2, SessionKind::Train)]);
}

#[test]
fn the_privacy_ledger_refuses_a_second_federation_that_would_pass_the_lifetime_budget() {
    // Attack 5 across federations: each hospital's patients may spend one federation's ε and
    // half its setup's, by its ledger. The first federation fits, every release charged; a
    // second one (another federation id, the same hospitals and ledgers) would pass the budget
    // at its first release: every hospital refuses its setup, and nothing of it is released.
    let mut settings = test_settings(1);
    settings.min_hospitals = HOSPITALS.len();
    let privacy = Privacy {
        dp_sgd: Some(DpSgd { sampling_rate: 0.05, noise_multiplier: 1.1, clip_norm: 1.0 }),
        delta: 1e-5,
        pooled: Some(PooledNoise { multiplier: 50.0, evaluation_multiplier: 12.0, rows_per_patient: 1 }),
        setup_statistics: settings.layout.setup_statistics(),
        evaluation_statistics: settings.layout.evaluation_statistics(),
    };
    settings.privacy = Some(privacy);
    let epochs = settings.train.epochs;
    let (setup, whole) = (privacy.epsilon_after(0, epochs), privacy.epsilon_after(1, epochs));
    assert!(setup > 0.0 && whole > setup, "{setup} {whole}");
    let mut driver = Driver::new(&HOSPITALS, settings.clone(), None, now());
    for hospital in &mut driver.hospitals {
        hospital.trust.consortium.max_epsilon = Some(whole + setup / 2.0);
    }
    driver.run(PHASES);
    assert!(driver.endings.iter().all(|e| matches!(e, Ending::Done)), "{:?}", driver.endings);
    // The setup is charged its pooled statistics (the final evaluation's too, counted from the
    // start), the round and the evaluation the whole federation's ε.
    for hospital in &driver.hospitals {
        let charged: Vec<Option<f64>> = hospital.ledger().iter().map(|r| r.epsilon).collect();
        assert_eq!(charged, [Some(setup), Some(whole), Some(whole)], "{}", hospital.name);
    }
    let second = FederationSettings { federation_id: "fed-2".into(), ..settings };
    let mut driver = driver.next_federation(second, None);
    driver.run(PHASES);
    all_refused(
        &driver,
        |e| matches!(e, Error::Trust(TrustError::PrivacyBudget { kind: SessionKind::Setup, spent, .. }) if *spent == whole),
    );
    for hospital in &driver.hospitals {
        assert!(hospital.ledger().iter().all(|r| r.slot.federation == "fed"), "{}", hospital.name);
    }
}

#[test]
fn a_setup_from_a_forged_server_state_is_refused() {
    // Attack 4: the first session's server state carries a best model with AUROC 1.0 (it would
    // become the final model with invented metrics), or a FedAvg state that is not the rule's
    // fresh one. Every hospital refuses before anything is released.
    let count = test_settings(1).spec.param_count();
    let driver = federation(
        lie_on(TaskKind::Confirm, move |_, task| {
            if task.session.is_some_and(|s| s.round == 0) {
                let mut state: ServerState = postcard::from_bytes(&task.sections[2]).unwrap();
                let params = fedcare_protocol::params::params_from_bytes(&task.sections[1], count).unwrap();
                state.best = Some(BestModel { trained_rounds: 3, auroc: 1.0, auprc: Some(1.0), platt: None, params });
                task.sections[2] = Bytes::from(postcard::to_allocvec(&state).unwrap());
            }
        }),
        1,
        &[],
    );
    off_schedule(&driver, "a setup starts from the initial state");
    ledgers_hold_only(&driver, &[]);
}

/// Runs `driver` until `hospital`'s next task is round `round`'s key generation, and returns it.
fn key_gen_of(driver: &mut Driver, hospital: &str, round: u32) -> Task {
    let hospital = NodeId::new(hospital).unwrap();
    for _ in 0..PHASES {
        if let Ok(task) = driver.coordinator.task_for(&hospital)
            && task.kind == TaskKind::KeyGen
            && task.session.is_some_and(|s| s.round == round)
        {
            return task;
        }
        driver.phase();
    }
    panic!("round {round} never started for {hospital}: {:?}", driver.endings);
}

#[test]
fn a_state_of_another_branch_is_refused_however_many_endorsed_it() {
    // Attack 7: the aggregator forks a consortium of five after round 1. Branch A runs round 2
    // over hospital-a and hospital-b alone (c, d and e are cut off); branch B, a second
    // coordinator resumed from round 1's checkpoint, runs rounds 2 and 3 over c, d and e: a
    // majority of the roster. The aggregator then hands hospital-a branch B's round-3 output as
    // round 4's start, endorsed by that majority for a later round than a's own: judged by
    // round numbers a would take it, though it does not descend from the state a endorsed. a
    // refuses, naming the fork; hospital-c, which computed that state, takes the same task.
    let mut settings = test_settings(4);
    settings.min_hospitals = 2;
    let mut driver = Driver::new(&FIVE, settings.clone(), None, now());
    key_gen_of(&mut driver, "hospital-a", 2);
    let round_1 = driver.snapshots.last().unwrap().checkpoint.clone();
    assert_eq!(round_1.records.len(), 2, "setup and round 1");
    for index in 2..FIVE.len() {
        driver.cut_off(index);
    }
    key_gen_of(&mut driver, "hospital-a", 3);
    driver.fork(round_1, &FIVE[2..]);
    let key_gen = key_gen_of(&mut driver, "hospital-c", 4);
    let branch_b = driver.snapshots.last().unwrap().checkpoint.clone();
    assert_eq!(branch_b.records.iter().map(|r| r.hospitals).collect::<Vec<_>>(), [5, 5, 3, 3]);

    // Round 4 over a, c, d and e: the liar relays their signed answers as the next step's section.
    let answering = [0, 2, 3, 4];
    let relay = |driver: &mut Driver, task: &Task| -> Bytes {
        let signed: Vec<Signed> = answering
            .iter()
            .map(|&i| postcard::from_bytes(&driver.hospitals[i].answer(&settings, task).1).unwrap())
            .collect();
        encode_bundle(&signed)
    };
    let commitments = relay(&mut driver, &key_gen);
    let reveal = Task { kind: TaskKind::Reveal, sections: vec![commitments], ..key_gen.clone() };
    let shares = relay(&mut driver, &reveal);
    // Branch B's state after round 3, whole, as a hospital that does not hold it is sent it.
    let chain = &branch_b.chain[..branch_b.chain.len() - 1];
    let confirm = Task {
        kind: TaskKind::Confirm,
        figures: branch_b.figures.clone(),
        sections: vec![
            shares,
            params_to_bytes(&branch_b.global),
            Bytes::from(server_bytes(&branch_b.server)),
            Bytes::from(branch_b.endorsements.clone()),
            encode_chain(chain),
        ],
        ..key_gen
    };
    let refused = driver.hospitals[0].try_answer(&settings, &confirm).unwrap_err();
    assert!(
        matches!(
            &refused,
            Error::Trust(TrustError::NotDescended {
                offered: SessionId { round: 4, .. },
                endorsed: SessionId { round: 3, .. },
                own: SessionId { round: 2, .. },
            })
        ),
        "{refused}"
    );
    assert!(refused.to_string().contains("a fork or a rollback"), "{refused}");
    driver.hospitals[2].try_answer(&settings, &confirm).expect("hospital-c computed that state");
    // Each hospital released once from round 1's output, with its own branch's set; a nothing
    // of round 4.
    let trained = |rounds: u32| -> Vec<(u32, SessionKind)> {
        [(0, SessionKind::Setup)].into_iter().chain((1..=rounds).map(|r| (r, SessionKind::Train))).collect()
    };
    assert_eq!(releases(&driver), [trained(2), trained(2), trained(3), trained(3), trained(3)]);
}

#[test]
fn a_consortium_of_five_refuses_a_final_model_endorsed_by_two() {
    // Attack 7: a hospital that did not take part in the final session takes the final model on
    // its roster's word only when a strict majority of the roster endorsed it: two branches of
    // a federation cannot both have one.
    let mut settings = test_settings(1);
    settings.min_hospitals = 2;
    let mut driver = Driver::new(&FIVE, settings, None, now());
    driver.run(PHASES);
    assert!(driver.endings.iter().all(|e| matches!(e, Ending::Done)), "{:?}", driver.endings);
    let file = driver.snapshots.last().unwrap().model.clone();
    let signed: Vec<_> = endorsements(&file).unwrap().into_iter().map(|(signed, _)| signed).collect();
    let settings = driver.settings().clone();
    // hospital-e lost its state directory: it holds no state of its own and must take the
    // roster's word.
    let hospital = &mut driver.hospitals[4];
    hospital.lose_state();
    let participant = hospital.participant(&settings);
    for (signers, accepted) in [(5, true), (3, true), (2, false)] {
        let mut branch = file.clone();
        branch.endorsements = encode_bundle(&signed[..signers]).to_vec();
        match (participant.check_final(&branch), accepted) {
            (Ok(()), true) => {}
            (Err(Error::Trust(TrustError::NotEndorsed { why })), false) => {
                assert!(why.contains("2 endorsements, this hospital requires 3"), "{why}");
            }
            (other, _) => panic!("{signers} endorsements: {other:?}"),
        }
    }
}

#[test]
fn the_honest_coordinator_stops_rather_than_go_on_from_a_decrypted_state_without_a_hospital() {
    // Attack 2 as the honest coordinator would make it: hospital-d leaves after round 1's
    // decryption opened (it refuses its result); going on to the next session from the same
    // state over the other three would release d's update as the difference. The coordinator
    // stops instead, saying why.
    let driver = four(
        1,
        Box::new(|node, task| {
            if task.kind == TaskKind::Result
                && node.as_str() == "hospital-d"
                && task.session.is_some_and(|s| s.round == 1)
            {
                task.sections[0] = Bytes::from_static(b"not a decrypted sum");
            }
        }),
    );
    for (hospital, ending) in driver.hospitals.iter().zip(&driver.endings).take(3) {
        match ending {
            Ending::Stopped(why) => assert!(why.contains("with other hospitals"), "{}: {why}", hospital.name),
            other => panic!("{}: expected the federation to stop, got {other:?}", hospital.name),
        }
    }
    assert!(matches!(driver.endings[3], Ending::Refused(_)), "{:?}", driver.endings[3]);
    let both = vec![(0, SessionKind::Setup), (1, SessionKind::Train)];
    assert_eq!(releases(&driver), vec![both; 4]);
}

#[test]
fn another_federation_id_or_job_than_the_hospital_agreed_to_is_refused() {
    // Attack 1: the aggregator hands the hospitals another federation id than the one their
    // configuration names (an empty ledger namespace and a fresh privacy budget), or an
    // exploration to hospitals that agreed to train. Each refuses before anything is released.
    let agreed_elsewhere = |hospital: &mut fedcare_protocol::driver::Hospital| {
        hospital.trust.agreed.federation_id = "the-federation-it-agreed-to".into();
    };
    let agreed_to_explore =
        |hospital: &mut fedcare_protocol::driver::Hospital| hospital.trust.agreed.job = JobKind::Explore;
    for (agree, what) in [(&agreed_elsewhere as &dyn Fn(&mut _), "federation id"), (&agreed_to_explore, "job")] {
        let mut settings = test_settings(1);
        settings.min_hospitals = HOSPITALS.len();
        let mut driver = Driver::new(&HOSPITALS, settings, None, now());
        driver.hospitals.iter_mut().for_each(agree);
        driver.run(PHASES);
        all_refused(&driver, |e| matches!(e, Error::Trust(TrustError::NotAgreed { what: w, .. }) if *w == what));
        ledgers_hold_only(&driver, &[]);
    }
}

#[test]
fn an_exploration_past_the_hospitals_own_bounds_is_refused() {
    // Attack 6, in part: the exploration's min_cell is the aggregator's, and explorations were
    // unlimited. A hospital refuses a min_cell below its own floor before anything is released,
    // and an exploration past its own number of them.
    let explore = |min_cell| {
        let mut settings = test_settings(1);
        settings.min_hospitals = HOSPITALS.len();
        settings.job = fedcare_protocol::Job::Explore { min_cell, label: "positive".into(), noise: None };
        settings
    };
    let agreed_to_explore =
        |hospital: &mut fedcare_protocol::driver::Hospital| hospital.trust.agreed.job = JobKind::Explore;
    let mut driver = Driver::new(&HOSPITALS, explore(3), None, now());
    driver.hospitals.iter_mut().for_each(agreed_to_explore);
    driver.run(PHASES);
    all_refused(
        &driver,
        |e| matches!(e, Error::Trust(TrustError::BelowFloor { what, got: 3, min: 10 }) if what.contains("min_cell")),
    );
    ledgers_hold_only(&driver, &[]);

    let mut driver = Driver::new(&HOSPITALS, explore(10), None, now());
    for hospital in &mut driver.hospitals {
        agreed_to_explore(hospital);
        hospital.trust.consortium.max_explorations = 0;
    }
    driver.run(PHASES);
    all_refused(
        &driver,
        |e| matches!(e, Error::Trust(TrustError::OutOfBounds { what, .. }) if what.contains("explorations")),
    );
    ledgers_hold_only(&driver, &[(0, SessionKind::Setup)]);
}

#[test]
fn subgroups_reported_below_the_hospitals_own_floor_are_refused() {
    // The subgroups' min_cell is the aggregator's too: a hospital refuses a federation that
    // would report subgroups smaller than its own floor, before anything is released.
    use fedcare_core::explore::{ColumnKind, ColumnSpec};
    let mut settings = test_settings(1);
    settings.min_hospitals = HOSPITALS.len();
    settings.layout.subgroups =
        vec![ColumnSpec { name: "sex".into(), kind: ColumnKind::Categorical { categories: 2, labels: Vec::new() } }];
    settings.subgroup_min_cell = 2;
    let mut driver = Driver::new(&HOSPITALS, settings, None, now());
    driver.run(PHASES);
    all_refused(
        &driver,
        |e| matches!(e, Error::Trust(TrustError::BelowFloor { what, got: 2, min: 10 }) if what.contains("subgroups")),
    );
    ledgers_hold_only(&driver, &[]);
}

#[test]
fn a_key_share_that_does_not_match_its_commitment_is_refused() {
    // Attack 8: hospital-a colludes with the aggregator. Shown the others' key shares before it
    // reveals its own, it swaps the share it committed to for another (here a fresh one; a rogue
    // one would make the collective secret one it knows), signed with its own key. Every
    // hospital refuses the reveal that does not match the commitment, before anything is
    // encrypted.
    let colluder: Arc<Mutex<Option<Arc<dyn fedcare_protocol::signing::Signer>>>> = Arc::default();
    let key = colluder.clone();
    let filter: TaskFilter = Box::new(move |_, task| {
        if task.kind != TaskKind::Confirm {
            return;
        }
        let key = key.lock().unwrap().clone().expect("the colluder's key");
        let mut bundle = decode_bundle(&task.sections[0]).unwrap();
        let own = bundle.iter_mut().find(|s| s.signer.as_str() == "hospital-a").expect("a's share");
        let party = fedcare_crypto::PartyId::new("hospital-a").unwrap();
        let crs = task.crs.unwrap();
        let (_, other) = fedcare_crypto::PartySession::new(
            fedcare_crypto::PARAMS_V2,
            party,
            crs,
            HOSPITALS.len(),
            &mut fedcare_protocol::driver::TestRng::new(99),
        )
        .unwrap();
        let mut statement = Statement::of(own).unwrap();
        statement.claim = Claim::KeyShare(other.encode().unwrap());
        *own = statement.sign(&own.signer, key.as_ref()).unwrap();
        task.sections[0] = encode_bundle(&bundle);
    });
    let mut settings = test_settings(1);
    settings.min_hospitals = HOSPITALS.len();
    let mut driver = Driver::new(&HOSPITALS, settings, Some(filter), now());
    *colluder.lock().unwrap() = Some(driver.hospitals[0].trust.key.clone());
    driver.run(PHASES);
    all_refused(
        &driver,
        |e| matches!(e, Error::Trust(TrustError::ShareNotCommitted { signer }) if signer.as_str() == "hospital-a"),
    );
    ledgers_hold_only(&driver, &[]);
}

/// A boosting federation of [`HOSPITALS`] (two trees of depth 2 over the test settings' three
/// inputs), every hospital needed, with `filter` in the aggregator.
fn boosting_federation(filter: Option<TaskFilter>) -> Driver {
    use fedcare_core::gbdt::BoostingConfig;
    use fedcare_protocol::boosting::Boosting;
    let mut settings = test_settings(1);
    settings.min_hospitals = HOSPITALS.len();
    let boosting = Boosting {
        config: BoostingConfig { trees: 2, depth: 2, ..BoostingConfig::default() },
        numeric_thresholds: Vec::new(),
    };
    settings.rounds = boosting.rounds();
    settings.boosting = Some(boosting);
    let mut driver = Driver::with_strangers(&HOSPITALS, &[], settings, filter, now());
    driver.run(PHASES);
    driver
}

#[test]
fn a_boosting_federation_grows_its_trees_and_a_forged_level_sum_is_refused() {
    let driver = boosting_federation(None);
    assert!(driver.endings.iter().all(|e| matches!(e, Ending::Done)), "{:?}", driver.endings);
    // Setup, the base session, a session a tree (no split is possible: each is one leaf), the
    // final evaluation; every one released once.
    let setup = (0, SessionKind::Setup);
    let (base, first, second) = ((1, SessionKind::Train), (2, SessionKind::Train), (3, SessionKind::Train));
    ledgers_hold_only(&driver, &[setup, base, first, second, (4, SessionKind::Evaluate)]);
    let last = driver.snapshots.last().unwrap();
    let model = &last.model;
    assert_eq!(model.metrics.get("trees_grown"), Some(&2.0));
    let ensemble = model.ensemble.as_ref().unwrap();
    // 9 positives of 30 rows: the log-odds of 3/7.
    assert!((ensemble.base_margin - (3.0f32 / 7.0).ln()).abs() < 1e-6, "{}", ensemble.base_margin);

    // The sum of the first tree's level moved by one unit of Δ in its first value: refused by
    // every hospital before it is applied, and nothing after the base session is released.
    const FIRST_VALUE: usize = 2 + 1 + 16 + 32 + 2 + 8;
    let mut results = 0;
    let driver = boosting_federation(lie_on(TaskKind::Result, move |_, task| {
        results += 1;
        // Each hospital is sent the result of the setup, the base, then the first level.
        if results > 2 * HOSPITALS.len() {
            task.sections[0] = rewrap(&task.sections[0], |payload| {
                let at = FIRST_VALUE;
                let word = u64::from_le_bytes(payload[at..at + 8].try_into().unwrap()).wrapping_add(1 << 34);
                payload[at..at + 8].copy_from_slice(&word.to_le_bytes());
            });
        }
    }));
    all_refused(&driver, |e| matches!(e, Error::Crypto(CryptoError::ForgedSum)));
    ledgers_hold_only(&driver, &[setup, base, first]);
}
