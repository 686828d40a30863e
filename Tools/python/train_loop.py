"""A training-loop-shaped use of Chorus from Python: data-parallel linear regression.

Each rank holds its own shard of the data, computes the gradient of the mean squared error on
it, averages gradients with all_reduce(op="avg") every step, and applies the same update, so
the model stays identical on every rank. Run it under any launcher:

    chorus run -n 4 -- python3 Tools/python/train_loop.py --steps 50

Exits 0 if the loss fell and every rank ended with the same weights.
"""

import argparse
import sys

import numpy as np

import chorus


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--features", type=int, default=4096)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--lr", type=float, default=40.0)
    args = parser.parse_args()

    comm = chorus.Communicator.from_env()
    truth = np.random.default_rng(0).standard_normal(args.features).astype(np.float32)
    rng = np.random.default_rng(1 + comm.rank)  # each rank its own shard
    x = rng.standard_normal((args.samples, args.features)).astype(np.float32) / np.sqrt(args.features)
    y = x @ truth

    weights = np.zeros(args.features, dtype=np.float32)
    comm.broadcast(weights, root=0)  # start from rank 0's weights
    first_loss = None
    loss = np.zeros(1, dtype=np.float32)
    for step in range(args.steps):
        error = x @ weights - y
        gradient = (2.0 / args.samples) * (x.T @ error).astype(np.float32)
        comm.all_reduce(gradient, op="avg")  # the data-parallel step
        weights -= args.lr * gradient
        loss[0] = float(np.mean(error ** 2))
        comm.all_reduce(loss, op="avg")
        if first_loss is None:
            first_loss = float(loss[0])
        if comm.rank == 0 and (step % 10 == 0 or step == args.steps - 1):
            print("step %3d  loss %.5f" % (step, loss[0]))

    # Every rank must hold the same model: gather everyone's weights and compare.
    everyone = np.empty(comm.size * args.features, dtype=np.float32)
    comm.all_gather(weights, everyone)
    same = all(np.array_equal(everyone[r * args.features:(r + 1) * args.features], weights) for r in range(comm.size))
    improved = float(loss[0]) < 0.5 * first_loss
    if comm.rank == 0:
        print("ranks %d, loss %.5f -> %.5f, weights identical on every rank: %s"
              % (comm.size, first_loss, loss[0], "yes" if same else "NO"))
    comm.close()
    return 0 if same and improved else 1


if __name__ == "__main__":
    sys.exit(main())
