//! The main job. Until the trainer lands this trains nothing: it builds a
//! policy MLP and fits it for a few seeded Adam steps, proving the engine runs.

use gflownet::autodiff::Tape;
use gflownet::nn::{Activation, Adam, AdamKind, GroupConfig, Mlp, ParamStore};
use gflownet::rng;
use ndarray::Array2;

fn main() {
    let mut init = rng::stream(0, rng::streams::INIT);
    let mut store = ParamStore::<f32>::new();
    let mlp = Mlp::new(
        &mut store,
        "mlp",
        "net",
        &[8, 64, 64, 1],
        Activation::Relu,
        false,
        &mut init,
    );
    let mut opt = Adam::new(AdamKind::Adam, vec![GroupConfig::new("net", 1e-3)], &store).expect("valid optimizer");
    let x = Array2::from_shape_fn((32, 8), |(i, j)| ((i * 8 + j) as f32 * 0.37).sin());
    let y = x.sum_axis(ndarray::Axis(1)).insert_axis(ndarray::Axis(1));
    for step in 0..200 {
        let mut tape = Tape::new();
        let p = store.bind(&mut tape);
        let xv = tape.constant(x.clone());
        let yv = tape.constant(y.clone());
        let pred = mlp.forward(&mut tape, &p, xv);
        let d = tape.sub(pred, yv);
        let sq = tape.square(d);
        let loss = tape.mean(sq);
        if step % 50 == 0 {
            println!("step {step:4}  loss {:.5}", tape.item(loss));
        }
        let mut g = tape.backward(loss);
        let mut grads = p.grads(&mut g, &store);
        opt.step(&mut store, &mut grads).expect("finite gradients");
    }
}
