//! A store of named parameters, each in an optimizer group.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::autodiff::{Gradients, Tape, Var};
use crate::Scalar;

/// Index of a parameter in its [`ParamStore`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ParamId(pub usize);

/// One named parameter.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Param<T> {
    pub name: String,
    /// Name of the optimizer group (learning rate, weight decay, clipping).
    pub group: String,
    pub value: Array2<T>,
}

/// All parameters of a model, in creation order.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ParamStore<T> {
    params: Vec<Param<T>>,
}

impl<T: Scalar> ParamStore<T> {
    pub fn new() -> Self {
        ParamStore { params: Vec::new() }
    }

    /// Adds a parameter; panics if the name is taken (a programming error).
    pub fn add(&mut self, name: &str, group: &str, value: Array2<T>) -> ParamId {
        assert!(self.find(name).is_none(), "parameter `{name}` defined twice");
        self.params.push(Param {
            name: name.to_string(),
            group: group.to_string(),
            value,
        });
        ParamId(self.params.len() - 1)
    }

    pub fn find(&self, name: &str) -> Option<ParamId> {
        self.params.iter().position(|p| p.name == name).map(ParamId)
    }

    pub fn get(&self, id: ParamId) -> &Param<T> {
        &self.params[id.0]
    }

    pub fn value(&self, id: ParamId) -> &Array2<T> {
        &self.params[id.0].value
    }

    pub fn value_mut(&mut self, id: ParamId) -> &mut Array2<T> {
        &mut self.params[id.0].value
    }

    pub fn len(&self) -> usize {
        self.params.len()
    }

    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Total number of scalars.
    pub fn numel(&self) -> usize {
        self.params.iter().map(|p| p.value.len()).sum()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Param<T>> {
        self.params.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Param<T>> {
        self.params.iter_mut()
    }

    /// Puts every parameter on `tape` as a leaf; index the result by [`ParamId`].
    pub fn bind(&self, tape: &mut Tape<T>) -> Bound {
        Bound(
            self.params
                .iter()
                .map(|p| tape.leaf(crate::autodiff::pool::copy(&p.value)))
                .collect(),
        )
    }

    /// Puts every parameter on `tape` as a constant (inference: no gradients).
    pub fn bind_constant(&self, tape: &mut Tape<T>) -> Bound {
        Bound(
            self.params
                .iter()
                .map(|p| tape.constant(crate::autodiff::pool::copy(&p.value)))
                .collect(),
        )
    }

    /// Converts every value to another scalar type (e.g. `f32` weights to `f64` for a gradient check).
    pub fn cast<U: Scalar>(&self) -> ParamStore<U> {
        ParamStore {
            params: self
                .params
                .iter()
                .map(|p| Param {
                    name: p.name.clone(),
                    group: p.group.clone(),
                    value: p.value.mapv(|x| U::from_f64(x.to_f64())),
                })
                .collect(),
        }
    }
}

/// The tape variables of a [`ParamStore`] bound by [`ParamStore::bind`].
#[derive(Clone, Debug)]
pub struct Bound(Vec<Var>);

impl std::ops::Index<ParamId> for Bound {
    type Output = Var;
    fn index(&self, id: ParamId) -> &Var {
        &self.0[id.0]
    }
}

impl From<Vec<Var>> for Bound {
    /// Variables standing for a store's parameters, in store order (e.g. the leaves a [`crate::autodiff::gradcheck`] closure receives).
    fn from(vars: Vec<Var>) -> Self {
        Bound(vars)
    }
}

impl Bound {
    /// The gradient of every parameter, in store order (zeros where the loss does not depend on it).
    pub fn grads<T: Scalar>(&self, grads: &mut Gradients<T>, store: &ParamStore<T>) -> Vec<Array2<T>> {
        self.0
            .iter()
            .zip(store.iter())
            .map(|(&v, p)| grads.take_or_zeros(v, p.value.dim()))
            .collect()
    }
}
