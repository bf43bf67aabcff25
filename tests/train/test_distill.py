import json

import numpy as np
import pytest
import tensorflow as tf

from edge_fer.errors import UserError
from edge_fer.train.distill import make_accuracy, make_distillation_loss, teacher_paths
from edge_fer.train.trainer import train
from tests.train.test_trainer import tiny_config


def test_distillation_loss_is_cross_entropy_at_weight_zero_and_kl_at_weight_one():
    labels = tf.one_hot([0, 2], 3)
    student = tf.constant([[0.7, 0.2, 0.1], [0.2, 0.2, 0.6]])
    teacher = tf.constant([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    target = tf.concat([labels, teacher], axis=-1)
    cross_entropy = tf.keras.losses.categorical_crossentropy(labels, student).numpy()
    np.testing.assert_allclose(make_distillation_loss(3, 2.0, 0.0)(target, student).numpy(), cross_entropy, rtol=1e-5)
    kd = make_distillation_loss(3, 2.0, 1.0)(target, student).numpy()
    assert kd[0] == pytest.approx(0.0, abs=1e-5)  # the student already agrees with the teacher on image 0
    assert kd[1] > 0.01
    # validation batches (sparse labels, or the labels alone) get the plain cross-entropy
    np.testing.assert_allclose(make_distillation_loss(3, 2.0, 1.0)(tf.constant([0, 2]), student).numpy(), cross_entropy,
                               rtol=1e-5)
    np.testing.assert_allclose(make_distillation_loss(3, 2.0, 1.0)(labels, student).numpy(), cross_entropy, rtol=1e-5)


def test_accuracy_reads_the_label_half_of_the_target():
    labels = tf.one_hot([0, 2], 3)
    teacher = tf.constant([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])  # a teacher disagreeing everywhere changes nothing
    student = tf.constant([[0.7, 0.2, 0.1], [0.7, 0.2, 0.1]])
    accuracy = make_accuracy(3)
    assert accuracy(tf.concat([labels, teacher], -1), student).numpy().tolist() == [1.0, 0.0]
    assert accuracy(tf.constant([0, 0]), student).numpy().tolist() == [1.0, 1.0]


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    train(tiny_config(out))
    return out


def test_a_student_learns_from_an_ensemble_and_records_the_teachers(teacher_run, tmp_path):
    out = tmp_path / "student"
    record = train(tiny_config(out, distill={"teacher": [str(teacher_run), str(teacher_run / "model.keras")],
                                             "temperature": 3.0, "weight": 0.5}))
    distillation = json.loads((out / "model.json").read_text())["distillation"]
    assert distillation["temperature"] == 3.0 and distillation["weight"] == 0.5
    assert len(distillation["teacher_test_accuracy"]) == 2
    teacher_accuracy = json.loads((teacher_run / "model.json").read_text())["metrics"]["test"]["accuracy"]
    assert distillation["teacher_test_accuracy"][0] == pytest.approx(teacher_accuracy, abs=1e-4)
    assert distillation["ensemble_test_accuracy"] == pytest.approx(teacher_accuracy, abs=1e-4)
    history = [json.loads(line) for line in (out / "stages" / "scratch" / "history.jsonl").read_text().splitlines()]
    assert all(np.isfinite(h["loss"]) and 0.0 <= h["accuracy"] <= 1.0 and "val_accuracy" in h for h in history)
    assert record["metrics"]["test"]["count"] == 21


def test_distillation_works_in_the_two_stage_schedule(teacher_run, tmp_path):
    record = train(tiny_config(tmp_path / "s", schedule="two_stage", distill={"teacher": str(teacher_run)}))
    assert record["distillation"]["teacher"] == [str(teacher_run)]


def test_the_loss_pulls_the_student_toward_the_teacher():
    """A teacher with known outputs changes the gradient: the same labels and student, two teachers that disagree,
    two gradients pointing to each teacher's favourite class; with weight 0 the teacher does not matter."""
    import numpy as np
    import tensorflow as tf

    from edge_fer.train.distill import make_distillation_loss

    labels = np.array([[1.0, 0.0, 0.0]], np.float32)
    teachers = {"second": np.array([[0.1, 0.8, 0.1]], np.float32), "third": np.array([[0.1, 0.1, 0.8]], np.float32)}

    def gradient(weight, teacher):
        logits = tf.Variable([[0.2, 0.1, 0.0]])
        with tf.GradientTape() as tape:
            loss = make_distillation_loss(3, temperature=2.0, weight=weight)(
                tf.constant(np.concatenate([labels, teacher], axis=1)), tf.nn.softmax(logits))
        return tape.gradient(loss, logits).numpy()[0]

    for name, favourite in (("second", 1), ("third", 2)):
        step = -gradient(0.9, teachers[name])  # gradient descent moves the logits this way
        assert np.argmax(step[1:]) + 1 == favourite  # toward the teacher's class, away from the other
    np.testing.assert_allclose(gradient(0.0, teachers["second"]), gradient(0.0, teachers["third"]), atol=1e-7)
    assert not np.allclose(gradient(0.9, teachers["second"]), gradient(0.9, teachers["third"]))


def test_a_teacher_of_another_size_sees_the_students_images_resized_to_its_own(teacher_run, tmp_path):
    from edge_fer.models.loading import load_model
    from edge_fer.train.distill import ensemble_probabilities

    teacher, _ = load_model(str(teacher_run))  # trained at 64 px
    images = tf.random.uniform((4, 80, 80, 3), 0.0, 255.0, seed=0)
    np.testing.assert_allclose(ensemble_probabilities([teacher], images).numpy(),
                               teacher(tf.image.resize(images, (64, 64)), training=False).numpy(), atol=1e-6)
    config = tiny_config(tmp_path / "s", distill={"teacher": str(teacher_run)})
    config.model.image_size = 80
    record = train(config)
    assert record["image_size"] == 80
    teacher_accuracy = json.loads((teacher_run / "model.json").read_text())["metrics"]["test"]["accuracy"]
    assert record["distillation"]["teacher_test_accuracy"] == [pytest.approx(teacher_accuracy, abs=1e-4)]


@pytest.mark.hostile("malformed-input")
def test_bad_teacher_settings_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="a path or a list of paths"):
        teacher_paths([3])
    with pytest.raises(UserError, match="weight must be between 0 and 1"):
        train(tiny_config(tmp_path / "s", distill={"teacher": "x", "weight": 2.0}))
