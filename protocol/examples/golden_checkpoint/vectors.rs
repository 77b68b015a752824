//! The golden checkpoint: a fixed [`Checkpoint`] with every field set, and its bytes. Shared by
//! the generator (`examples/golden_checkpoint/main.rs`) and the test (`tests/golden_checkpoint.rs`).

use fedcare_core::ServerOptimizerConfig;
use fedcare_core::gbdt::Ensemble;
use fedcare_protocol::boosting::BoostingState;
use fedcare_protocol::checkpoint::{Checkpoint, OpenedSession};
use fedcare_protocol::digest::StateContent;
use fedcare_protocol::selection::ServerState;
use fedcare_protocol::{NodeId, Planned, PublicFigures, RoundRecord, SessionId, SessionKind};

/// The file the bytes are committed in.
pub(crate) const FILE: &str = "checkpoint_v12.bin";

/// A checkpoint of a federation resumed at its final evaluation, after an opened session.
pub(crate) fn checkpoint() -> Checkpoint {
    let mut record = RoundRecord::new(SessionId { round: 1, attempt: 0 }, SessionKind::Train, 3);
    record.train_loss = Some(0.5);
    record.seconds = 1.25;
    record.bytes_up = 1024;
    record.bytes_down = 2048;
    record.subgroups =
        Some(fedcare_core::subgroup::SubgroupReport { min_cell: 10, top_share: 0.1, columns: Vec::new() });
    let mut server = ServerState::new(ServerOptimizerConfig::FedAvg { lr: 1.0 }, 4).expect("a server state");
    server.released_rounds = 1;
    server.boosting = Some(BoostingState {
        ensemble: Some(Ensemble::new(-1.5)),
        growing: None,
        kept_trees: 0,
        quantiles: vec![vec![-0.5, 0.25, 1.0], Vec::new()],
    });
    Checkpoint {
        federation_id: "fed".into(),
        param_count: 4,
        next: Some(Planned { round: 2, kind: SessionKind::Evaluate }),
        global: vec![0.5, -1.25, 3.0, 0.0],
        server,
        figures: PublicFigures {
            train_rows: 30,
            test_rows: 6,
            feature_stats: vec![fedcare_core::ColumnStats { mean: 1.5, std: 2.0 }],
            top_k: vec![vec![3, 1]],
        },
        records: vec![record],
        opened: Some(Planned { round: 2, kind: SessionKind::Evaluate }),
        endorsements: vec![1, 2, 3],
        resumable: Some(OpenedSession {
            session: SessionId { round: 2, attempt: 1 },
            crs: 0x0123_4567_89ab_cdef_0011_2233_4455_6677,
            participants: ["a", "b", "c"].iter().map(|n| NodeId::new(*n).expect("a node id")).collect(),
        }),
        chain: vec![StateContent([1; 32]), StateContent([2; 32]), StateContent([3; 32])],
    }
}
