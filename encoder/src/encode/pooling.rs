//! [`Pooling`]: how a sequence's token states become one vector. Prompt templates name it
//! (`templates.toml`), sentence-transformers folders declare it (`1_Pooling`), and the encoder
//! applies it to the final hidden states.

use burn::tensor::{backend::Backend, DType, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::layers::to_f32;

/// How a sequence's token states become one vector. In template data: `last`, `mean`, `cls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pooling {
    /// The state of the last real token (decoder models; zero-shot: the prompt's last token;
    /// supervised: the appended EOS).
    #[serde(rename = "last")]
    LastToken,
    /// The mean over real tokens (sentence-transformers `pooling_mode_mean_tokens`).
    Mean,
    /// The first token's state (BERT's [CLS], `pooling_mode_cls_token`).
    Cls,
}

impl Pooling {
    /// The name the encoder fingerprint records. Recipe v1 wrote the `Debug` names of the
    /// prompt templates' own enum (`Last`, `Mean`, `Cls`); spelt out here so fingerprints of
    /// existing indexes stay valid whatever the variants are called.
    pub fn fingerprint_name(self) -> &'static str {
        match self {
            Self::LastToken => "Last",
            Self::Mean => "Mean",
            Self::Cls => "Cls",
        }
    }

    /// `[batch, hidden]` pooled states (f32) of right-padded `[batch, padded, hidden]` states
    /// whose rows have `lengths` real tokens.
    pub(crate) fn pool<B: Backend>(self, hidden: Tensor<B, 3>, lengths: &[usize]) -> Tensor<B, 2> {
        let [batch, padded, width] = hidden.dims();
        let device = hidden.device();
        let hidden = to_f32(hidden);
        let pick = |position: &dyn Fn(usize) -> usize| {
            let rows: Vec<i32> = (0..batch)
                .map(|row| (row * padded + position(lengths[row])) as i32)
                .collect();
            let rows = Tensor::<B, 1, Int>::from_data(TensorData::new(rows, [batch]), &device);
            hidden
                .clone()
                .reshape([batch * padded, width])
                .select(0, rows)
        };
        match self {
            Pooling::LastToken => pick(&|length| length - 1),
            Pooling::Cls => pick(&|_| 0),
            Pooling::Mean => {
                let mask: Vec<f32> = lengths
                    .iter()
                    .flat_map(|&length| (0..padded).map(move |p| f32::from(u8::from(p < length))))
                    .collect();
                let mask = Tensor::<B, 3>::from_data(
                    TensorData::new(mask, [batch, padded, 1]),
                    (&device, DType::F32),
                );
                let counts: Vec<f32> = lengths.iter().map(|&length| length as f32).collect();
                let counts = Tensor::<B, 2>::from_data(
                    TensorData::new(counts, [batch, 1]),
                    (&device, DType::F32),
                );
                (hidden * mask).sum_dim(1).reshape([batch, width]) / counts
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Pooling;

    #[test]
    fn template_names_and_fingerprint_names_are_stable() {
        for (pooling, template, fingerprint) in [
            (Pooling::LastToken, "last", "Last"),
            (Pooling::Mean, "mean", "Mean"),
            (Pooling::Cls, "cls", "Cls"),
        ] {
            let json = format!("\"{template}\"");
            assert_eq!(serde_json::from_str::<Pooling>(&json).unwrap(), pooling);
            assert_eq!(serde_json::to_string(&pooling).unwrap(), json);
            assert_eq!(pooling.fingerprint_name(), fingerprint);
        }
    }
}
