//! Planning an encode: the encoders and decoders a machine has and their
//! limits (`codec`), and the bitrate/resolution ladder for a source
//! (`ladder`).

pub mod codec;
pub mod ladder;
