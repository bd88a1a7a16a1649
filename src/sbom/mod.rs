//! Software bills of materials: what reached each artifact.

pub mod image;
