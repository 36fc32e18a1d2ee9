//! One ChaCha20-Poly1305 call per Python call (RFC 8439 section 2.8), with the interface
//! the link uses from `cryptography`'s class of the same name: `ChaCha20Poly1305(key)`,
//! `encrypt(nonce, data, aad)` returning ciphertext and tag, `decrypt(nonce, data, aad)`
//! returning the plaintext or raising `InvalidTag`. protocol/link/aead.py chooses it over
//! `cryptography` when this module is built and passes its self-test, so a node that runs
//! neither a masked skin nor TLS never maps `cryptography`'s OpenSSL (issue 15's memory).
//!
//! The calls keep the GIL: one packet's AEAD (about a microsecond for 1400 bytes) costs
//! less than releasing and taking it back. The output `bytes` is written in place: the
//! input is copied into it once and sealed or opened there. The backend is the threads'
//! (cipher.rs): ring's assembly by default, RustCrypto's without the `ring` feature.

// create_exception!'s own `cfg(feature = "gil-refs")` names pyo3's feature, not ours
#![allow(unexpected_cfgs)]

use pyo3::buffer::PyBuffer;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::cipher::{Cipher, ASSEMBLY, KEY_SIZE, NONCE_SIZE, TAG_SIZE};

create_exception!(
    _dataplane,
    InvalidTag,
    PyException,
    "The tag did not authenticate the ciphertext, the nonce and the associated data."
);

/// A Python argument read as bytes: a `bytes` object in place, any other buffer
/// (a memoryview of a datagram, a bytearray) through the buffer protocol.
enum Input<'py> {
    Bytes(Bound<'py, PyBytes>),
    Buffer(PyBuffer<u8>),
}

impl<'py> Input<'py> {
    fn new(name: &str, value: &Bound<'py, PyAny>) -> PyResult<Self> {
        match value.downcast::<PyBytes>() {
            Ok(b) => Ok(Input::Bytes(b.clone())),
            Err(_) => PyBuffer::<u8>::get_bound(value)
                .map(Input::Buffer)
                .map_err(|_| PyValueError::new_err(format!("{name}: a bytes-like object"))),
        }
    }

    fn len(&self) -> usize {
        match self {
            Input::Bytes(b) => b.as_bytes().len(),
            Input::Buffer(b) => b.len_bytes(),
        }
    }

    /// Copy `self[start..start + dst.len()]` into `dst`.
    fn copy_into(&self, py: Python<'py>, start: usize, dst: &mut [u8]) -> PyResult<()> {
        match self {
            Input::Bytes(b) => {
                dst.copy_from_slice(&b.as_bytes()[start..start + dst.len()]);
                Ok(())
            }
            Input::Buffer(b) => match b.as_slice(py) {
                Some(cells) => {
                    let end = start + dst.len();
                    for (d, c) in dst.iter_mut().zip(&cells[start..end]) {
                        *d = c.get();
                    }
                    Ok(())
                }
                None => {
                    dst.copy_from_slice(&b.to_vec(py)?[start..start + dst.len()]);
                    Ok(())
                }
            },
        }
    }

    fn to_vec(&self, py: Python<'py>) -> PyResult<Vec<u8>> {
        match self {
            Input::Bytes(b) => Ok(b.as_bytes().to_vec()),
            Input::Buffer(b) => b.to_vec(py),
        }
    }
}

/// The associated data: none, a `bytes` read in place, or another buffer copied.
fn with_aad<R>(
    py: Python<'_>,
    aad: Option<&Bound<'_, PyAny>>,
    f: impl FnOnce(&[u8]) -> PyResult<R>,
) -> PyResult<R> {
    match aad {
        None => f(b""),
        Some(value) => match value.downcast::<PyBytes>() {
            Ok(b) => f(b.as_bytes()),
            Err(_) => f(&Input::new("associated_data", value)?.to_vec(py)?),
        },
    }
}

/// The nonce and the data of a call, checked.
fn arguments<'py>(
    nonce: &[u8],
    name: &str,
    data: &Bound<'py, PyAny>,
) -> PyResult<([u8; NONCE_SIZE], Input<'py>)> {
    let nonce: [u8; NONCE_SIZE] = nonce
        .try_into()
        .map_err(|_| PyValueError::new_err("nonce: ChaCha20-Poly1305's nonce is 12 bytes"))?;
    Ok((nonce, Input::new(name, data)?))
}

#[pyclass(module = "tidewire._dataplane", name = "ChaCha20Poly1305", frozen)]
pub struct Aead {
    cipher: Cipher,
}

#[pymethods]
impl Aead {
    /// Whether the backend is ring's assembly (faster per call than `cryptography`'s
    /// OpenSSL here, 1.4 against 2.8 us for 1400 bytes) or the portable one (slower:
    /// protocol/link/aead.py then prefers `cryptography` where the AEAD runs per packet
    /// in Python).
    #[classattr]
    const ASSEMBLY: bool = ASSEMBLY;

    #[new]
    fn new(key: &[u8]) -> PyResult<Self> {
        let key: &[u8; KEY_SIZE] = key
            .try_into()
            .map_err(|_| PyValueError::new_err("key: ChaCha20-Poly1305's key is 32 bytes"))?;
        Ok(Aead {
            cipher: Cipher::new(key),
        })
    }

    /// `data` sealed under `nonce` with `associated_data`: the ciphertext, then the tag.
    #[pyo3(signature = (nonce, data, associated_data))]
    fn encrypt<'py>(
        &self,
        py: Python<'py>,
        nonce: &[u8],
        data: &Bound<'py, PyAny>,
        associated_data: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let (nonce, data) = arguments(nonce, "data", data)?;
        let n = data.len();
        with_aad(py, associated_data, |aad| {
            PyBytes::new_bound_with(py, n + TAG_SIZE, |out| {
                let (body, tag) = out.split_at_mut(n);
                data.copy_into(py, 0, body)?;
                let sealed = self
                    .cipher
                    .seal_detached(nonce, aad, body)
                    .ok_or_else(|| PyValueError::new_err("data: too long for one nonce"))?;
                tag.copy_from_slice(&sealed);
                Ok(())
            })
        })
    }

    /// The plaintext of `sealed` (ciphertext, then the tag), or `InvalidTag`.
    #[pyo3(signature = (nonce, sealed, associated_data))]
    fn decrypt<'py>(
        &self,
        py: Python<'py>,
        nonce: &[u8],
        sealed: &Bound<'py, PyAny>,
        associated_data: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let (nonce, data) = arguments(nonce, "sealed", sealed)?;
        let n = match data.len().checked_sub(TAG_SIZE) {
            Some(n) => n,
            None => return Err(InvalidTag::new_err(())),
        };
        let mut tag = [0u8; TAG_SIZE];
        data.copy_into(py, n, &mut tag)?;
        with_aad(py, associated_data, |aad| {
            PyBytes::new_bound_with(py, n, |out| {
                data.copy_into(py, 0, out)?;
                if self.cipher.open_detached(nonce, aad, out, tag) {
                    Ok(())
                } else {
                    Err(InvalidTag::new_err(()))
                }
            })
        })
    }
}

/// The class and its exception, added to the module (lib.rs).
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Aead>()?;
    m.add("InvalidTag", m.py().get_type_bound::<InvalidTag>())
}
