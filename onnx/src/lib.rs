//! # fedcare-onnx
//!
//! A trained model as an ONNX graph, so that any ONNX runtime scores with it (a hospital's Java
//! or C# scoring service, onnxruntime in Python): the network's dense layers (`Gemm`, with the
//! weights exactly as the model file holds them), `Relu` between them — or a boosted model's
//! trees as one `ai.onnx.ml` `TreeEnsembleRegressor` (every split `BRANCH_LT`, the base margin as
//! its base value, leaf values summed) —, the model file's Platt scaling when it has one (`Mul`,
//! `Add`) and a `Sigmoid`.
//!
//! The graph takes the **encoded** inputs, `features`: a `rows × input_width` float tensor, the
//! numeric columns standardised with the model's federated feature scaling and the categorical
//! columns one-hot, as `fedcare predict` encodes a file (the Python package's `Model.encode`
//! gives them). It gives `probability`, `rows × 1`: what `fedcare predict` writes for the same
//! rows. How to encode is in the model's metadata (`metadata_props`, every value JSON but the
//! schema id): the schema id, the input names, the feature scaling, the `top_k` buckets, the
//! calibration and the federation's metrics, under keys starting with `fedcare.` ([`keys`]).
//!
//! Guarantees:
//! - Opset 17 and IR version 8 (onnxruntime 1.13 and later; trees also `ai.onnx.ml` opset 3);
//!   the messages come from the
//!   official `onnx.proto` (ONNX 1.23.2, vendored in `proto/onnx/`) through prost and protox, no
//!   system `protoc`.
//! - The same numbers as `fedcare predict` up to float rounding: the Python tests run the graph
//!   in onnxruntime, check it with `onnx.checker`, and compare its probabilities with `fedcare
//!   predict`'s file for logistic regression, an MLP and boosted trees (within 1e-5).
#![forbid(unsafe_code)]

use fedcare_core::ModelFile;
use prost::Message as _;

/// The ONNX messages, generated from `onnx.proto`.
#[allow(missing_docs, unreachable_pub, clippy::all, rust_2018_idioms)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

use proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto, attribute_proto, tensor_proto::DataType,
    tensor_shape_proto::Dimension, tensor_shape_proto::dimension, type_proto,
};

/// The operator set the graph uses (the default domain's).
pub const OPSET: i64 = 17;
/// The IR version of opset 17.
pub const IR_VERSION: i64 = 8;
/// The `ai.onnx.ml` operator set of a tree ensemble's graph (its `TreeEnsembleRegressor`).
pub const ML_OPSET: i64 = 3;
/// The domain of the tree ensemble operator.
pub const ML_DOMAIN: &str = "ai.onnx.ml";
/// The graph's input: the encoded rows.
pub const INPUT: &str = "features";
/// The graph's output: the probability of the positive label per row.
pub const OUTPUT: &str = "probability";

/// The `metadata_props` keys the export writes.
pub mod keys {
    /// The feature schema's id (plain text).
    pub const SCHEMA_ID: &str = "fedcare.schema_id";
    /// The name of every encoded input, in order (JSON list; absent when not known).
    pub const INPUT_NAMES: &str = "fedcare.input_names";
    /// The mean and standard deviation each leading numeric input was standardised with (JSON
    /// list of `{"mean", "std"}`; the value fed is `(x − mean) / std`).
    pub const FEATURE_SCALING: &str = "fedcare.feature_scaling";
    /// Per `top_k` column, the hash buckets its one-hot slots stand for (JSON list of lists).
    pub const CATEGORY_BUCKETS: &str = "fedcare.category_buckets";
    /// The Platt scaling inside the graph (JSON `{"a", "b"}`, or `null`).
    pub const CALIBRATION: &str = "fedcare.calibration";
    /// The federation's metrics of the model (JSON object).
    pub const METRICS: &str = "fedcare.metrics";
}

/// Why a model cannot be exported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The input names given are not one per input.
    #[error("{got} input names for a model of {expected} inputs")]
    InputNames {
        /// The model's input width.
        expected: usize,
        /// Names given.
        got: usize,
    },
}

/// The ONNX model of `model`; `input_names` (one per encoded input, as the schema names them)
/// go into the metadata when given.
pub fn to_model_proto(model: &ModelFile, input_names: Option<&[String]>) -> Result<ModelProto, ExportError> {
    let width = model.spec.input_width();
    if let Some(names) = input_names
        && names.len() != width
    {
        return Err(ExportError::InputNames { expected: width, got: names.len() });
    }
    let mut nodes = Vec::new();
    let mut initializers = Vec::new();
    let mut current = INPUT.to_owned();
    if let Some(ensemble) = &model.ensemble {
        nodes.push(tree_ensemble(ensemble, "trees.margin", &current));
        current = "trees.margin".to_owned();
    }
    let layers = if model.ensemble.is_some() { Vec::new() } else { model.spec.layers() };
    for (index, layer) in layers.iter().enumerate() {
        let weight = format!("layer{index}.weight");
        let bias = format!("layer{index}.bias");
        // The flat layout stores W row-major as fan_in × fan_out (`X · W + b`): Gemm's B as it is.
        initializers.push(float_tensor(&weight, &[layer.fan_in, layer.fan_out], &model.params[layer.weights()]));
        initializers.push(float_tensor(&bias, &[layer.fan_out], &model.params[layer.biases()]));
        let gemm = format!("layer{index}.linear");
        nodes.push(node("Gemm", &gemm, &[&current, &weight, &bias]));
        current = gemm;
        if layer.relu {
            let relu = format!("layer{index}.relu");
            nodes.push(node("Relu", &relu, &[&current]));
            current = relu;
        }
    }
    if let Some(platt) = model.calibration {
        initializers.push(float_tensor("platt.a", &[], &[platt.a as f32]));
        initializers.push(float_tensor("platt.b", &[], &[platt.b as f32]));
        nodes.push(node("Mul", "platt.scaled", &[&current, "platt.a"]));
        nodes.push(node("Add", "platt.logit", &["platt.scaled", "platt.b"]));
        current = "platt.logit".to_owned();
    }
    let mut sigmoid = node("Sigmoid", OUTPUT, &[&current]);
    sigmoid.name = Some("sigmoid".to_owned());
    nodes.push(sigmoid);

    let graph = GraphProto {
        name: Some("fedcare".to_owned()),
        node: nodes,
        initializer: initializers,
        input: vec![tensor_value(
            INPUT,
            &[Dim::Rows, Dim::Fixed(width)],
            "encoded rows: numeric inputs standardised with fedcare.feature_scaling, then one-hot categories \
             (fedcare.input_names)",
        )],
        output: vec![tensor_value(
            OUTPUT,
            &[Dim::Rows, Dim::Fixed(1)],
            "probability of the positive label (calibrated when fedcare.calibration is set)",
        )],
        ..Default::default()
    };
    let json = |value: serde_json::Value| value.to_string();
    let mut metadata = vec![(keys::SCHEMA_ID, model.schema_id.clone())];
    if let Some(names) = input_names {
        metadata.push((keys::INPUT_NAMES, json(serde_json::json!(names))));
    }
    metadata.extend([
        (keys::FEATURE_SCALING, json(serde_json::json!(model.feature_scaling))),
        (keys::CATEGORY_BUCKETS, json(serde_json::json!(model.category_buckets))),
        (keys::CALIBRATION, json(serde_json::json!(model.calibration))),
        (keys::METRICS, json(serde_json::json!(model.metrics))),
    ]);
    Ok(ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: core::iter::once(OperatorSetIdProto { domain: Some(String::new()), version: Some(OPSET) })
            .chain(
                model
                    .ensemble
                    .as_ref()
                    .map(|_| OperatorSetIdProto { domain: Some(ML_DOMAIN.to_owned()), version: Some(ML_OPSET) }),
            )
            .collect(),
        producer_name: Some("fedcare".to_owned()),
        producer_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        doc_string: Some(match &model.ensemble {
            Some(ensemble) => format!(
                "fedcare model of schema {}: {} inputs, {} gradient-boosted trees",
                model.schema_id,
                width,
                ensemble.trees.len()
            ),
            None => format!(
                "fedcare model of schema {}: {} inputs, hidden layers {:?}",
                model.schema_id,
                width,
                model.spec.hidden()
            ),
        }),
        graph: Some(graph),
        metadata_props: metadata
            .into_iter()
            .map(|(key, value)| StringStringEntryProto { key: Some(key.to_owned()), value: Some(value) })
            .collect(),
        ..Default::default()
    })
}

/// The bytes of an `.onnx` file of `model` (see [`to_model_proto`]).
pub fn export(model: &ModelFile, input_names: Option<&[String]>) -> Result<Vec<u8>, ExportError> {
    Ok(to_model_proto(model, input_names)?.encode_to_vec())
}

/// An `ai.onnx.ml` `TreeEnsembleRegressor` of `ensemble` on `input`: its margin, `rows × 1`
/// (every tree's leaf summed, plus the base margin).
fn tree_ensemble(ensemble: &fedcare_core::gbdt::Ensemble, output: &str, input: &str) -> NodeProto {
    use fedcare_core::gbdt::Node;
    let mut ints: [(&str, Vec<i64>); 5] = [
        ("nodes_treeids", Vec::new()),
        ("nodes_nodeids", Vec::new()),
        ("nodes_featureids", Vec::new()),
        ("nodes_truenodeids", Vec::new()),
        ("nodes_falsenodeids", Vec::new()),
    ];
    let mut modes = Vec::new();
    let mut thresholds = Vec::new();
    let mut targets: [(&str, Vec<i64>); 3] =
        [("target_treeids", Vec::new()), ("target_nodeids", Vec::new()), ("target_ids", Vec::new())];
    let mut weights = Vec::new();
    for (tree, nodes) in ensemble.trees.iter().enumerate() {
        for (id, node) in nodes.nodes.iter().enumerate() {
            let (feature, threshold, yes, no, mode) = match *node {
                // `x < threshold` goes left: BRANCH_LT's true branch.
                Node::Split { input, threshold, left, right } => {
                    (i64::from(input), threshold, i64::from(left), i64::from(right), "BRANCH_LT")
                }
                Node::Leaf { value } => {
                    for (list, v) in targets.iter_mut().zip([tree as i64, id as i64, 0]) {
                        list.1.push(v);
                    }
                    weights.push(value);
                    (0, 0.0, 0, 0, "LEAF")
                }
            };
            for (list, v) in ints.iter_mut().zip([tree as i64, id as i64, feature, yes, no]) {
                list.1.push(v);
            }
            thresholds.push(threshold);
            modes.push(mode.as_bytes().to_vec());
        }
    }
    let mut attribute: Vec<AttributeProto> =
        ints.into_iter().chain(targets).map(|(name, values)| ints_attribute(name, values)).collect();
    attribute.extend([
        AttributeProto {
            name: Some("nodes_modes".to_owned()),
            r#type: Some(attribute_proto::AttributeType::Strings as i32),
            strings: modes,
            ..Default::default()
        },
        floats_attribute("nodes_values", thresholds),
        floats_attribute("target_weights", weights),
        floats_attribute("base_values", vec![ensemble.base_margin]),
        AttributeProto {
            name: Some("n_targets".to_owned()),
            r#type: Some(attribute_proto::AttributeType::Int as i32),
            i: Some(1),
            ..Default::default()
        },
        string_attribute("aggregate_function", "SUM"),
        string_attribute("post_transform", "NONE"),
    ]);
    NodeProto { domain: Some(ML_DOMAIN.to_owned()), attribute, ..node("TreeEnsembleRegressor", output, &[input]) }
}

fn ints_attribute(name: &str, values: Vec<i64>) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_owned()),
        r#type: Some(attribute_proto::AttributeType::Ints as i32),
        ints: values,
        ..Default::default()
    }
}

fn floats_attribute(name: &str, values: Vec<f32>) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_owned()),
        r#type: Some(attribute_proto::AttributeType::Floats as i32),
        floats: values,
        ..Default::default()
    }
}

fn string_attribute(name: &str, value: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_owned()),
        r#type: Some(attribute_proto::AttributeType::String as i32),
        s: Some(value.as_bytes().to_vec()),
        ..Default::default()
    }
}

/// One dimension of a declared tensor.
enum Dim {
    /// The number of rows, free.
    Rows,
    /// A fixed size.
    Fixed(usize),
}

fn node(op: &str, output: &str, inputs: &[&str]) -> NodeProto {
    NodeProto {
        op_type: Some(op.to_owned()),
        name: Some(output.to_owned()),
        input: inputs.iter().map(|&i| i.to_owned()).collect(),
        output: vec![output.to_owned()],
        ..Default::default()
    }
}

fn float_tensor(name: &str, dims: &[usize], values: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.to_owned()),
        data_type: Some(DataType::Float as i32),
        dims: dims.iter().map(|&d| d as i64).collect(),
        float_data: values.to_vec(),
        ..Default::default()
    }
}

fn tensor_value(name: &str, dims: &[Dim], doc: &str) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Rows => dimension::Value::DimParam("rows".to_owned()),
                Dim::Fixed(size) => dimension::Value::DimValue(*size as i64),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.to_owned()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        doc_string: Some(doc.to_owned()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use fedcare_core::ModelSpec;
    use fedcare_core::calibration::Platt;
    use fedcare_core::stats::ColumnStats;

    use super::*;

    fn model(hidden: &[usize], calibration: Option<Platt>) -> ModelFile {
        let spec = ModelSpec::mlp(3, hidden).unwrap();
        let params: Vec<f32> = (0..spec.param_count()).map(|i| i as f32 * 0.25 - 1.0).collect();
        let mut file = ModelFile::new(spec, params, "test/v1").unwrap();
        file.feature_scaling = vec![ColumnStats { mean: 2.0, std: 0.5 }];
        file.calibration = calibration;
        file
    }

    fn ops(proto: &ModelProto) -> Vec<&str> {
        proto.graph.as_ref().unwrap().node.iter().map(|n| n.op_type.as_deref().unwrap()).collect()
    }

    fn metadata<'a>(proto: &'a ModelProto, key: &str) -> Option<&'a str> {
        proto.metadata_props.iter().find(|p| p.key.as_deref() == Some(key)).and_then(|p| p.value.as_deref())
    }

    #[test]
    fn an_mlp_is_gemm_relu_per_hidden_layer_then_gemm_and_sigmoid_with_the_weights_as_they_are() {
        let file = model(&[4, 2], None);
        let bytes = export(&file, None).unwrap();
        let proto = ModelProto::decode(bytes.as_slice()).unwrap();
        assert_eq!(ops(&proto), ["Gemm", "Relu", "Gemm", "Relu", "Gemm", "Sigmoid"]);
        let graph = proto.graph.as_ref().unwrap();
        // Every parameter is in an initializer, in the flat layout's order, bit for bit.
        let flat: Vec<f32> = graph.initializer.iter().flat_map(|t| t.float_data.iter().copied()).collect();
        assert_eq!(flat, file.params);
        assert_eq!(graph.initializer[0].dims, [3, 4]);
        assert_eq!(graph.initializer[1].dims, [4]);
        assert_eq!(graph.initializer[4].dims, [2, 1]);
        // The chain is connected: each node reads what the one before it wrote.
        for pair in graph.node.windows(2) {
            assert_eq!(pair[1].input[0], pair[0].output[0]);
        }
        assert_eq!(graph.node[0].input[0], INPUT);
        assert_eq!(graph.node.last().unwrap().output[0], OUTPUT);
        assert_eq!(proto.opset_import[0].version, Some(OPSET));
        assert_eq!(metadata(&proto, keys::SCHEMA_ID), Some("test/v1"));
        assert_eq!(metadata(&proto, keys::FEATURE_SCALING), Some(r#"[{"mean":2.0,"std":0.5}]"#));
        assert_eq!(metadata(&proto, keys::CALIBRATION), Some("null"));
        assert_eq!(metadata(&proto, keys::INPUT_NAMES), None);
    }

    #[test]
    fn a_calibrated_logistic_regression_scales_its_logit_before_the_sigmoid() {
        let names: Vec<String> = ["age", "visits", "sex=F"].iter().map(|s| s.to_string()).collect();
        let proto = to_model_proto(&model(&[], Some(Platt { a: 0.5, b: -1.25 })), Some(&names)).unwrap();
        assert_eq!(ops(&proto), ["Gemm", "Mul", "Add", "Sigmoid"]);
        let graph = proto.graph.as_ref().unwrap();
        let a = graph.initializer.iter().find(|t| t.name.as_deref() == Some("platt.a")).unwrap();
        assert_eq!((a.dims.len(), a.float_data.as_slice()), (0, [0.5f32].as_slice()));
        assert_eq!(metadata(&proto, keys::CALIBRATION), Some(r#"{"a":0.5,"b":-1.25}"#));
        assert_eq!(metadata(&proto, keys::INPUT_NAMES), Some(r#"["age","visits","sex=F"]"#));
    }

    #[test]
    fn input_names_must_be_one_per_input() {
        let names = vec!["only".to_owned()];
        assert_eq!(
            to_model_proto(&model(&[], None), Some(&names)).unwrap_err(),
            ExportError::InputNames { expected: 3, got: 1 }
        );
    }

    #[test]
    fn boosted_trees_are_one_tree_ensemble_of_their_nodes_then_the_calibration_and_sigmoid() {
        use fedcare_core::gbdt::{Ensemble, Node, Tree};
        let stump = Tree {
            nodes: vec![
                Node::Split { input: 2, threshold: 0.5, left: 1, right: 2 },
                Node::Leaf { value: -0.25 },
                Node::Leaf { value: 0.5 },
            ],
        };
        let leaf = Tree { nodes: vec![Node::Leaf { value: 0.125 }] };
        let mut file =
            ModelFile::boosted(Ensemble { base_margin: -2.0, trees: vec![stump, leaf] }, 3, "test/v1").unwrap();
        file.calibration = Some(Platt { a: 1.5, b: 0.25 });
        let proto = to_model_proto(&file, None).unwrap();
        assert_eq!(ops(&proto), ["TreeEnsembleRegressor", "Mul", "Add", "Sigmoid"]);
        assert!(
            proto.opset_import.iter().any(|o| o.domain.as_deref() == Some(ML_DOMAIN) && o.version == Some(ML_OPSET))
        );
        let trees = &proto.graph.as_ref().unwrap().node[0];
        assert_eq!(trees.domain.as_deref(), Some(ML_DOMAIN));
        let attribute = |name: &str| trees.attribute.iter().find(|a| a.name.as_deref() == Some(name)).unwrap();
        assert_eq!(attribute("nodes_treeids").ints, [0, 0, 0, 1]);
        assert_eq!(attribute("nodes_featureids").ints, [2, 0, 0, 0]);
        assert_eq!(attribute("nodes_truenodeids").ints, [1, 0, 0, 0]);
        assert_eq!(attribute("nodes_falsenodeids").ints, [2, 0, 0, 0]);
        let modes: Vec<&[u8]> = attribute("nodes_modes").strings.iter().map(Vec::as_slice).collect();
        assert_eq!(modes, [b"BRANCH_LT".as_slice(), b"LEAF", b"LEAF", b"LEAF"]);
        assert_eq!(attribute("target_weights").floats, [-0.25, 0.5, 0.125]);
        assert_eq!(attribute("base_values").floats, [-2.0]);
        assert_eq!(attribute("n_targets").i, Some(1));
    }
}
