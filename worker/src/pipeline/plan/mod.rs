//! Planning an encode: the encoders and decoders a machine has and their
//! limits (`codec`), and the bitrate/resolution ladder for a source
//! (`ladder`), and what an encode costs in memory (`memory`).

pub mod codec;
pub mod decoder;
pub mod ladder;
pub mod memory;
