//! The model: a Transformer encoder over a window of time steps.
//!
//! Each step's channels are projected to `d_model`, given a sinusoidal position, and encoded
//! by `layers` self-attention layers; the last step's encoding is projected to the forecast,
//! `horizon` steps of the target channels.

use burn::module::Module;
use burn::nn::attention::MhaInput;
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderLayer,
};
use burn::nn::{Linear, LinearConfig, PositionalEncoding, PositionalEncodingConfig};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};
use trainstore_core::{Error, Result};

/// The model's size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub d_model: usize,
    pub heads: usize,
    pub layers: usize,
    pub d_ff: usize,
    pub dropout: f64,
}

impl Default for ModelConfig {
    /// The size the benchmarks compare: 2 layers, `d_model` 64, 4 heads, feed-forward 128.
    fn default() -> Self {
        ModelConfig {
            d_model: 64,
            heads: 4,
            layers: 2,
            d_ff: 128,
            dropout: 0.1,
        }
    }
}

impl ModelConfig {
    /// Refuses a size no model can have, naming what is wrong.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &'static str, value: usize, reason: &str| {
            Err(Error::invalid(what, value.to_string(), reason))
        };
        if self.d_model == 0 || self.layers == 0 || self.d_ff == 0 {
            return bad(
                "model size",
                0,
                "d_model, layers and d_ff must be at least 1",
            );
        }
        if self.heads == 0 || !self.d_model.is_multiple_of(self.heads) {
            return bad("attention heads", self.heads, "must divide d_model");
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::invalid(
                "dropout",
                self.dropout.to_string(),
                "must lie in [0, 1)",
            ));
        }
        Ok(())
    }
}

/// The shapes a model reads and writes: fixed by the data it was trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shapes {
    pub length: usize,
    pub channels: usize,
    pub horizon: usize,
    pub targets: usize,
}

/// A Transformer encoder over time steps, with a forecast head.
#[derive(Module, Debug)]
pub struct SeriesTransformer<B: Backend> {
    input: Linear<B>,
    position: PositionalEncoding<B>,
    encoder: TransformerEncoder<B>,
    head: Linear<B>,
    #[module(skip)]
    shapes: Shapes,
}

impl<B: Backend> SeriesTransformer<B> {
    /// A model of `config`'s size for `shapes`, its weights drawn from the backend's seeded
    /// generator.
    pub fn new(config: &ModelConfig, shapes: Shapes, device: &B::Device) -> Result<Self> {
        config.validate()?;
        if shapes.horizon == 0 || shapes.targets == 0 {
            return Err(Error::invalid(
                "forecast",
                format!("{} steps of {} channels", shapes.horizon, shapes.targets),
                "a forecast needs a horizon and a scalar feature to predict",
            ));
        }
        Ok(SeriesTransformer {
            input: LinearConfig::new(shapes.channels, config.d_model).init(device),
            position: PositionalEncodingConfig::new(config.d_model)
                .with_max_sequence_size(shapes.length.max(1))
                .init(device),
            encoder: TransformerEncoderConfig::new(
                config.d_model,
                config.d_ff,
                config.heads,
                config.layers,
            )
            .with_dropout(config.dropout)
            .with_norm_first(true)
            .init(device),
            head: LinearConfig::new(config.d_model, shapes.horizon * shapes.targets).init(device),
            shapes,
        })
    }

    /// The shapes it reads and writes.
    pub fn shapes(&self) -> Shapes {
        self.shapes
    }

    /// `[batch, length, channels]` → `[batch, horizon, targets]`.
    pub fn forward(&self, windows: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, _, _] = windows.dims();
        let mut steps = self.position.forward(self.input.forward(windows));
        let (last_layer, earlier) = self
            .encoder
            .layers
            .split_last()
            .expect("a model has at least one layer");
        for layer in earlier {
            steps = layer.forward(steps, None, None);
        }
        self.head.forward(last_step(last_layer, steps)).reshape([
            batch,
            self.shapes.horizon,
            self.shapes.targets,
        ])
    }
}

/// What the (pre-norm) encoder `layer` makes of the last of `steps` (`[batch, length,
/// d_model]` → `[batch, d_model]`): the only step the head reads. Its attention needs every
/// step's keys and values but only the last step's query, and its feed-forward only the last
/// step, so this is the whole layer's output at that step for less than half the layer's
/// work (with the default size, 0.6 of 2.6 million multiply-adds per window).
fn last_step<B: Backend>(layer: &TransformerEncoderLayer<B>, steps: Tensor<B, 3>) -> Tensor<B, 2> {
    debug_assert!(layer.norm_first, "models are built pre-norm");
    let [_, length, _] = steps.dims();
    // burn's pre-norm layer normalises with `norm_2` before attention, `norm_1` before the
    // feed-forward.
    let normed = layer.norm_2.forward(steps.clone());
    let query = normed.clone().narrow(1, length - 1, 1);
    let attended = layer
        .mha
        .forward(MhaInput::new(query, normed.clone(), normed))
        .context;
    let x = steps.narrow(1, length - 1, 1) + layer.dropout.forward(attended);
    let fed = layer.pwff.forward(layer.norm_1.forward(x.clone()));
    (x + layer.dropout.forward(fed)).squeeze_dim::<2>(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cpu;
    use burn::nn::transformer::TransformerEncoderInput;
    use burn::tensor::Distribution;

    #[test]
    fn the_last_step_alone_is_the_whole_encoders_last_step() {
        let device = Default::default();
        let config = ModelConfig {
            layers: 3,
            ..ModelConfig::default()
        };
        let shapes = Shapes {
            length: 16,
            channels: 5,
            horizon: 2,
            targets: 3,
        };
        let model = SeriesTransformer::<Cpu>::new(&config, shapes, &device).expect("a model");
        let windows = Tensor::<Cpu, 3>::random([4, 16, 5], Distribution::Normal(0.0, 1.0), &device);
        // Every layer over every step, as burn's encoder runs them, then the last step.
        let steps = model.position.forward(model.input.forward(windows.clone()));
        let whole = model
            .encoder
            .forward(TransformerEncoderInput::new(steps))
            .narrow(1, 15, 1)
            .squeeze_dim::<2>(1);
        let expected = model.head.forward(whole).reshape([4, 2, 3]);
        let got = model.forward(windows);
        let largest = (got - expected.clone()).abs().max().into_scalar();
        let scale = expected.abs().max().into_scalar();
        assert!(scale > 0.1, "{scale}");
        assert!(largest < 1e-5, "{largest} apart");
    }
}
