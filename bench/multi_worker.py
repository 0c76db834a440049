"""Does Keras' model.fit train under tf.distribute.MultiWorkerMirroredStrategy here?

    python -m bench.multi_worker

Starts two local worker processes (CPU, TF_CONFIG on 127.0.0.1) that each build a small
SeparableConv2D model in the strategy's scope and fit it for two epochs, and prints what
each one got. On Keras 3.15.1 / TensorFlow 2.21.0 both fail inside fit with
`ValueError: Attempt to convert a value (PerReplica:{...})`: keras-team/keras#20585 (open),
first reported as tensorflow/tensorflow#72388 when TF 2.16 moved to Keras 3. So the train
stage uses MirroredStrategy (several GPUs of one machine) and nothing multi-worker; run
this again after upgrading Keras or TensorFlow to see whether that can change.
"""

import json
import os
import socket
import subprocess
import sys

WORKER = """
import numpy as np, tensorflow as tf, keras
strategy = tf.distribute.MultiWorkerMirroredStrategy()
x = np.random.default_rng(0).random((256, 16, 16, 3)).astype("float32")
y = (x.mean(axis=(1, 2, 3)) > 0.5).astype("int32")
data = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).repeat()
with strategy.scope():
    inputs = keras.Input((16, 16, 3))
    h = keras.layers.SeparableConv2D(4, 3)(inputs)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, keras.layers.Dense(2)(h))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
try:
    history = model.fit(data, epochs=2, steps_per_epoch=4, verbose=0)
    replicas = strategy.num_replicas_in_sync
    print("RESULT fit ok on", replicas, "replicas, loss", history.history["loss"])
except Exception as error:
    print("RESULT fit failed:", type(error).__name__, str(error).splitlines()[0][:120])
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    import keras
    import tensorflow as tf

    print(f"Keras {keras.__version__}, TensorFlow {tf.__version__}, 2 workers on 127.0.0.1")
    workers = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    processes = []
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps(config),
            "CUDA_VISIBLE_DEVICES": "",
            "TF_CPP_MIN_LOG_LEVEL": "3",
        }
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", WORKER],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        )
    for index, process in enumerate(processes):
        output, _ = process.communicate(timeout=300)
        results = [line for line in output.splitlines() if line.startswith("RESULT")]
        print(f"worker {index}: {results[-1][7:] if results else 'no result'}")


if __name__ == "__main__":
    main()
