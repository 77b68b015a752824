//! The model specification and its flat parameter layout.
//!
//! A model is a stack of dense layers: `input_width -> hidden[0] -> ... -> hidden[k-1] -> 1`, with
//! ReLU after every hidden layer and a single logit out. No hidden layers is logistic regression.
//!
//! # Parameter layout (shared by the CPU trainer, the GPU trainer and the codec)
//! All parameters live in ONE `[f32]`. Layers follow each other in order, input side first; each
//! layer stores its weight matrix, then its bias:
//!
//! ```text
//! layer l (fan_in -> fan_out):
//!   weight_offset .. weight_offset + fan_in * fan_out   W[i][j] at weight_offset + i * fan_out + j
//!                                                       (row i = input unit, column j = output unit)
//!   bias_offset   .. bias_offset + fan_out              b[j]
//! ```
//!
//! so a batch `X` (rows × fan_in, row-major) maps to `X · W + b` (rows × fan_out, row-major).

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The largest parameter count a spec may have (2^28 values, 1 GiB of `f32`): far beyond any
/// tabular model, small enough that a hostile spec cannot make us allocate without bound.
pub const MAX_PARAMETERS: usize = 1 << 28;

/// The architecture of a model: input width and hidden layer widths (one logit out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSpec {
    input_width: usize,
    hidden: Vec<usize>,
}

/// The shape and position of one dense layer inside the flat parameter vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerShape {
    /// Number of inputs of the layer.
    pub fan_in: usize,
    /// Number of outputs of the layer (1 for the last layer).
    pub fan_out: usize,
    /// Index of `W[0][0]` in the parameter vector.
    pub weight_offset: usize,
    /// Index of `b[0]` in the parameter vector.
    pub bias_offset: usize,
    /// Whether a ReLU follows the layer (every layer but the last).
    pub relu: bool,
}

impl LayerShape {
    /// The weight range of this layer in the parameter vector.
    pub fn weights(&self) -> core::ops::Range<usize> {
        self.weight_offset..self.weight_offset + self.fan_in * self.fan_out
    }

    /// The bias range of this layer in the parameter vector.
    pub fn biases(&self) -> core::ops::Range<usize> {
        self.bias_offset..self.bias_offset + self.fan_out
    }

    /// Index one past this layer's last parameter.
    pub fn end(&self) -> usize {
        self.bias_offset + self.fan_out
    }
}

impl ModelSpec {
    /// A logistic-regression model over `input_width` features.
    pub fn logistic_regression(input_width: usize) -> Result<Self> {
        Self::mlp(input_width, &[])
    }

    /// An MLP with the given hidden widths (ReLU after each) and one logit out.
    pub fn mlp(input_width: usize, hidden: &[usize]) -> Result<Self> {
        let spec = Self { input_width, hidden: hidden.to_vec() };
        spec.validate()?;
        Ok(spec)
    }

    /// Checks the spec: non-zero widths and at most [`MAX_PARAMETERS`] parameters.
    ///
    /// Specs built with [`ModelSpec::mlp`] are always valid; specs decoded from files or the
    /// network must be checked with this before use.
    pub fn validate(&self) -> Result<()> {
        if self.input_width == 0 {
            return Err(Error::EmptyLayer { layer: 0 });
        }
        if let Some(i) = self.hidden.iter().position(|&w| w == 0) {
            return Err(Error::EmptyLayer { layer: i + 1 });
        }
        let mut count: usize = 0;
        let mut fan_in = self.input_width;
        for &fan_out in self.hidden.iter().chain(core::iter::once(&1)) {
            count = fan_in
                .checked_mul(fan_out)
                .and_then(|w| w.checked_add(fan_out))
                .and_then(|l| l.checked_add(count))
                .filter(|&c| c <= MAX_PARAMETERS)
                .ok_or(Error::TooManyParameters { max: MAX_PARAMETERS })?;
            fan_in = fan_out;
        }
        Ok(())
    }

    /// Number of input features.
    pub fn input_width(&self) -> usize {
        self.input_width
    }

    /// Hidden layer widths (empty for logistic regression).
    pub fn hidden(&self) -> &[usize] {
        &self.hidden
    }

    /// The layer widths, input to output, as `fedcare inspect` prints them (`359-32-16-1`).
    pub fn architecture(&self) -> alloc::string::String {
        use alloc::string::ToString;
        let widths: Vec<_> =
            core::iter::once(self.input_width).chain(self.hidden.iter().copied()).map(|w| w.to_string()).collect();
        alloc::format!("{}-1", widths.join("-"))
    }

    /// The dense layers in order, with their positions in the flat parameter vector.
    pub fn layers(&self) -> Vec<LayerShape> {
        let mut layers = Vec::with_capacity(self.hidden.len() + 1);
        let mut fan_in = self.input_width;
        let mut offset = 0;
        let last = self.hidden.len();
        for (index, &fan_out) in self.hidden.iter().chain(core::iter::once(&1)).enumerate() {
            let layer = LayerShape {
                fan_in,
                fan_out,
                weight_offset: offset,
                bias_offset: offset + fan_in * fan_out,
                relu: index != last,
            };
            offset = layer.end();
            fan_in = fan_out;
            layers.push(layer);
        }
        layers
    }

    /// Total number of parameters (length of the flat parameter vector).
    pub fn param_count(&self) -> usize {
        self.layers().last().map_or(0, LayerShape::end)
    }

    /// The widest layer (input included): the scratch width a forward pass needs per row.
    pub fn max_width(&self) -> usize {
        self.hidden.iter().copied().fold(self.input_width, usize::max)
    }

    /// Checks that `params` has exactly [`param_count`](Self::param_count) values.
    pub fn check_params(&self, params: &[f32]) -> Result<()> {
        let expected = self.param_count();
        if params.len() != expected {
            return Err(Error::ParamLength { expected, got: params.len() });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_of_a_two_hidden_layer_mlp_is_contiguous_and_documented() {
        let spec = ModelSpec::mlp(3, &[4, 2]).unwrap();
        let layers = spec.layers();
        assert_eq!(layers.len(), 3);
        assert_eq!(layers[0].weights(), 0..12);
        assert_eq!(layers[0].biases(), 12..16);
        assert_eq!(layers[1].weights(), 16..24);
        assert_eq!(layers[1].biases(), 24..26);
        assert_eq!(layers[2].weights(), 26..28);
        assert_eq!(layers[2].biases(), 28..29);
        assert!(layers[0].relu && layers[1].relu && !layers[2].relu);
        assert_eq!(spec.param_count(), 29);
    }

    #[test]
    fn logistic_regression_has_one_layer() {
        let spec = ModelSpec::logistic_regression(64).unwrap();
        assert_eq!(spec.param_count(), 65);
        assert!(!spec.layers()[0].relu);
    }

    #[test]
    fn bad_specs_are_refused() {
        assert_eq!(ModelSpec::mlp(0, &[]), Err(Error::EmptyLayer { layer: 0 }));
        assert_eq!(ModelSpec::mlp(5, &[3, 0]), Err(Error::EmptyLayer { layer: 2 }));
        assert_eq!(ModelSpec::mlp(1 << 20, &[1 << 20]), Err(Error::TooManyParameters { max: MAX_PARAMETERS }));
        assert_eq!(ModelSpec::mlp(usize::MAX, &[usize::MAX]), Err(Error::TooManyParameters { max: MAX_PARAMETERS }));
    }
}
