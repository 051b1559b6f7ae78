//! The model: a Transformer encoder over a window of time steps.
//!
//! Each step's channels are projected to `d_model`, given a sinusoidal position, and encoded
//! by `layers` self-attention layers; the last step's encoding is projected to the forecast,
//! `horizon` steps of the target channels.

use burn::module::Module;
use burn::nn::attention::MultiHeadAttention;
use burn::nn::transformer::{
    PositionWiseFeedForward, TransformerEncoder, TransformerEncoderConfig, TransformerEncoderLayer,
};
use burn::nn::{Dropout, Linear, LinearConfig, PositionalEncoding, PositionalEncodingConfig};
use burn::tensor::activation::{quiet_softmax, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
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

    /// `[batch, length, channels]` → `[batch, horizon, targets]`, dropout off.
    pub fn forward(&self, windows: Tensor<B, 3>) -> Tensor<B, 3> {
        self.forward_with(windows, &mut None)
    }

    /// [`Self::forward`] while training: dropout masks drawn from `masks`.
    pub(crate) fn forward_training(
        &self,
        windows: Tensor<B, 3>,
        masks: &mut Masks,
    ) -> Tensor<B, 3> {
        self.forward_with(windows, &mut Some(masks))
    }

    fn forward_with(&self, windows: Tensor<B, 3>, masks: &mut Option<&mut Masks>) -> Tensor<B, 3> {
        let [batch, _, _] = windows.dims();
        let mut steps = self.position.forward(self.input.forward(windows));
        let (last_layer, earlier) = self
            .encoder
            .layers
            .split_last()
            .expect("a model has at least one layer");
        for layer in earlier {
            steps = encoder_layer(layer, steps, masks);
        }
        self.head
            .forward(last_step(last_layer, steps, masks))
            .reshape([batch, self.shapes.horizon, self.shapes.targets])
    }
}

/// Where a training forward pass draws its dropout masks.
pub(crate) enum Masks {
    /// From a generator of its own, on the host: so that the shards of a batch run forward
    /// at once on CPU threads (burn's dropout draws from the backend's one generator per
    /// process, in whatever order the threads reach it) and a seed still means one run.
    Host(Box<StdRng>),
    /// From the backend's own generator, on its device (a GPU's: masks of a batch of
    /// thousands of windows are not drawn on the host and copied over).
    Backend,
}

impl Masks {
    /// Masks drawn on the host by `seed`.
    pub(crate) fn host(seed: u64) -> Self {
        Masks::Host(Box::new(StdRng::seed_from_u64(seed)))
    }

    /// `x` with each value kept with probability `1 - dropout.prob` and scaled by its
    /// inverse (so the expectation is `x`), or zeroed.
    fn apply<B: Backend, const D: usize>(
        &mut self,
        dropout: &Dropout,
        x: Tensor<B, D>,
    ) -> Tensor<B, D> {
        let rng = match self {
            Masks::Backend => return dropout.forward(x),
            Masks::Host(rng) => rng,
        };
        if dropout.prob == 0.0 {
            return x;
        }
        let keep = 1.0 - dropout.prob;
        // A value is kept when a uniform 32-bit draw falls below `keep` of the range.
        let threshold = (keep * 4_294_967_296.0) as u64;
        let scale = (1.0 / keep) as f32;
        let shape = x.shape();
        let mask: Vec<f32> = (0..shape.num_elements())
            .map(|_| {
                if u64::from(rng.next_u32()) < threshold {
                    scale
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::<B, D>::from_data(TensorData::new(mask, shape), &x.device());
        x * mask
    }
}

/// `x` through `dropout`: as it is, unless a training pass draws masks.
fn dropout<B: Backend, const D: usize>(
    dropout: &Dropout,
    x: Tensor<B, D>,
    masks: &mut Option<&mut Masks>,
) -> Tensor<B, D> {
    match masks {
        Some(masks) => masks.apply(dropout, x),
        None => x,
    }
}

/// A pre-norm encoder `layer` over every step (`[batch, length, d_model]`), as burn's
/// `TransformerEncoderLayer::forward` with `norm_first`, its dropout drawn from `masks`.
fn encoder_layer<B: Backend>(
    layer: &TransformerEncoderLayer<B>,
    steps: Tensor<B, 3>,
    masks: &mut Option<&mut Masks>,
) -> Tensor<B, 3> {
    debug_assert!(layer.norm_first, "models are built pre-norm");
    // burn's pre-norm layer normalises with `norm_2` before attention, `norm_1` before the
    // feed-forward.
    let normed = layer.norm_2.forward(steps.clone());
    let attended = attention(&layer.mha, normed.clone(), normed, masks);
    let x = steps + dropout(&layer.dropout, attended, masks);
    let fed = feed_forward(&layer.pwff, layer.norm_1.forward(x.clone()), masks);
    x + dropout(&layer.dropout, fed, masks)
}

/// What the (pre-norm) encoder `layer` makes of the last of `steps` (`[batch, length,
/// d_model]` → `[batch, d_model]`): the only step the head reads. Its attention needs every
/// step's keys and values but only the last step's query, and its feed-forward only the last
/// step, so this is the whole layer's output at that step for less than half the layer's
/// work (with the default size, 0.6 of 2.6 million multiply-adds per window).
fn last_step<B: Backend>(
    layer: &TransformerEncoderLayer<B>,
    steps: Tensor<B, 3>,
    masks: &mut Option<&mut Masks>,
) -> Tensor<B, 2> {
    debug_assert!(layer.norm_first, "models are built pre-norm");
    let [_, length, _] = steps.dims();
    let normed = layer.norm_2.forward(steps.clone());
    let query = normed.clone().narrow(1, length - 1, 1);
    let attended = attention(&layer.mha, query, normed, masks);
    let x = steps.narrow(1, length - 1, 1) + dropout(&layer.dropout, attended, masks);
    let fed = feed_forward(&layer.pwff, layer.norm_1.forward(x.clone()), masks);
    (x + dropout(&layer.dropout, fed, masks)).squeeze_dim::<2>(1)
}

/// `mha`'s attention of `queries` (`[batch, queries, d_model]`) over `keys` (which are also
/// the values), as burn's `MultiHeadAttention::forward`, but for where dropout applies: to
/// the attention weights after the softmax (as PyTorch's does), not to the scores before it.
fn attention<B: Backend>(
    mha: &MultiHeadAttention<B>,
    queries: Tensor<B, 3>,
    keys: Tensor<B, 3>,
    masks: &mut Option<&mut Masks>,
) -> Tensor<B, 3> {
    let [batch, length, d_model] = queries.dims();
    let heads = |x: Tensor<B, 3>, linear: &Linear<B>| {
        let [batch, length, _] = x.dims();
        linear
            .forward(x)
            .reshape([batch, length, mha.n_heads, mha.d_k])
            .swap_dims(1, 2)
    };
    let query = heads(queries, &mha.query);
    let key = heads(keys.clone(), &mha.key);
    let value = heads(keys, &mha.value);
    let scores = query
        .matmul(key.transpose())
        .div_scalar((mha.d_k as f32).sqrt());
    let weights = if mha.quiet_softmax {
        quiet_softmax(scores, 3)
    } else {
        softmax(scores, 3)
    };
    let context = dropout(&mha.dropout, weights, masks)
        .matmul(value)
        .swap_dims(1, 2)
        .reshape([batch, length, d_model]);
    mha.output.forward(context)
}

/// `pwff` over `x`, as burn's `PositionWiseFeedForward::forward`, its dropout drawn from
/// `masks`.
fn feed_forward<B: Backend>(
    pwff: &PositionWiseFeedForward<B>,
    x: Tensor<B, 3>,
    masks: &mut Option<&mut Masks>,
) -> Tensor<B, 3> {
    let inner = pwff.activation.forward(pwff.linear_inner.forward(x));
    pwff.linear_outer
        .forward(dropout(&pwff.dropout, inner, masks))
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

    #[test]
    fn training_passes_draw_dropout_masks_from_their_own_seed() {
        let device = Default::default();
        let dropout = Dropout { prob: 0.3 };
        let ones = Tensor::<Cpu, 2>::ones([100, 1000], &device);
        let masked = Masks::host(9).apply(&dropout, ones);
        let values = masked.into_data().to_vec::<f32>().expect("floats");
        let dropped = values.iter().filter(|v| **v == 0.0).count() as f64 / 1e5;
        assert!((dropped - 0.3).abs() < 0.01, "{dropped} dropped");
        let mean = values.iter().map(|v| f64::from(*v)).sum::<f64>() / 1e5;
        assert!((mean - 1.0).abs() < 0.02, "mean {mean}");

        let config = ModelConfig {
            dropout: 0.3,
            ..ModelConfig::default()
        };
        let shapes = Shapes {
            length: 8,
            channels: 3,
            horizon: 1,
            targets: 3,
        };
        let model = SeriesTransformer::<Cpu>::new(&config, shapes, &device).expect("a model");
        let windows = Tensor::<Cpu, 3>::random([4, 8, 3], Distribution::Normal(0.0, 1.0), &device);
        let run = |seed| {
            let out = model.forward_training(windows.clone(), &mut Masks::host(seed));
            out.into_data().to_vec::<f32>().expect("floats")
        };
        let plain = model
            .forward(windows.clone())
            .into_data()
            .to_vec::<f32>()
            .expect("floats");
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
        assert_ne!(run(1), plain);
    }
}
