//! The masking proof over a list the sender shuffled after masking.

use super::*;

fn shuffled(list: &[PointBytes], seed: u64) -> Vec<PointBytes> {
    let mut out = list.to_vec();
    out.shuffle(&mut rng(seed));
    out
}

#[test]
fn shuffled_lists_verify_against_the_list_before_shuffling() {
    for (seed, n) in [(60u64, 0usize), (61, 1), (62, 2), (63, 50)] {
        let case = Case::honest(seed, n);
        let sent = shuffled(&case.outputs, seed);
        assert_eq!(
            verify_shuffled(
                &case.context,
                &case.key,
                &case.inputs,
                &case.outputs,
                &sent,
                &case.proof
            ),
            Ok(()),
            "n = {n}"
        );
    }
}

#[test]
fn shuffled_lists_that_are_not_a_permutation_are_rejected() {
    let case = Case::honest(64, 40);
    let mut rng = rng(64);
    let check = |sent: &[PointBytes]| {
        verify_shuffled(
            &case.context,
            &case.key,
            &case.inputs,
            &case.outputs,
            sent,
            &case.proof,
        )
    };
    let sent = shuffled(&case.outputs, 1);

    let mut replaced = sent.clone();
    replaced[rng.random_range(0..40)] = enc(&random_point(&mut rng));
    assert_eq!(check(&replaced), Err(DleqError::NotAPermutation));

    // Same set of distinct points, other multiplicities.
    let mut duplicated = sent.clone();
    duplicated[3] = duplicated[4];
    assert_eq!(check(&duplicated), Err(DleqError::NotAPermutation));

    assert_eq!(check(&sent[1..]), Err(DleqError::NotAPermutation));
}

/// The list before shuffling must be in input order: presenting the shuffled
/// list as the aligned one, or a tampered aligned list with its own shuffle,
/// fails the proof.
#[test]
fn the_aligned_list_must_be_the_proven_one() {
    let case = Case::honest(65, 30);
    let sent = shuffled(&case.outputs, 2);
    assert_eq!(
        verify_shuffled(&case.context, &case.key, &case.inputs, &sent, &sent, &case.proof),
        Err(DleqError::Invalid)
    );
    case.assert_rejected(&case.inputs, &sent, "shuffled list as the aligned one");
    let mut tampered = case.outputs.clone();
    tampered[0] = enc(&RistrettoPoint::mul_base(&Scalar::from(7u8)));
    case.assert_rejected(&case.inputs, &tampered, "first point replaced");
    let tampered_sent = shuffled(&tampered, 3);
    assert_eq!(
        verify_shuffled(
            &case.context,
            &case.key,
            &case.inputs,
            &tampered,
            &tampered_sent,
            &case.proof
        ),
        Err(DleqError::Invalid)
    );
}

/// Errors that cancel under the weights of the honest statement: harmless only
/// because the weights also depend on the outputs, so changing the outputs
/// changes the weights.
#[test]
fn outputs_chosen_after_the_weights_are_rejected() {
    let case = Case::honest(70, 6);
    let seed = statement_seed(&case.context, &case.key, &case.inputs, &case.outputs);
    let mut w = vec![0u128; 6];
    weights_into(&seed, 0, &mut w);
    let w: Vec<Scalar> = w.into_iter().map(Scalar::from).collect();
    let d = RistrettoPoint::mul_base(&Scalar::from(5u8));
    let q = |b: &PointBytes| decode_point(b, 0).expect("valid");
    let mut outputs = case.outputs.clone();
    // w0 * (w1 * d) + w1 * (-w0 * d) = 0
    outputs[0] = enc(&(q(&outputs[0]) + w[1] * d));
    outputs[1] = enc(&(q(&outputs[1]) - w[0] * d));
    let proof =
        prove_aligned(&case.secret, &case.context, &case.inputs, &outputs, &mut rng(0)).expect("well-formed");
    assert_eq!(
        verify_aligned(&case.context, &case.key, &case.inputs, &outputs, &proof),
        Err(DleqError::Invalid)
    );
}
