"""Class ids checked against a class count: one message for every input path.

`check_labels` checks labels held in memory (numpy) and raises at once;
`assert_labels` checks labels as they stream through a TensorFlow graph
(tf.data or a compiled training step) and raises when the batch is computed.
Both say the same thing: the first label out of range, the valid range and
what the class count belongs to.
"""

import numpy as np

MODEL_GARDEN_HINT = (
    "TFRecords in the TF Model Garden / imagenet_to_gcs.py format store labels 1..1000 "
    "(0 = background): pass label_offset=-1."
)


def out_of_range_template(num_classes, owner, hint=""):
    """The message for a label outside `[0, num_classes)`, with `{}` for the label.

    The one placeholder suits both `str.format` and `tf.strings.format`.

    Args:
        num_classes: int. The class count.
        owner: str. What the count belongs to, e.g. `"num_classes=10"` or
            `"a model with 10 classes"`.
        hint: str. A sentence appended to the message (e.g.
            `MODEL_GARDEN_HINT`), or `""`.

    Returns:
        str, e.g. `"Label {} is outside [0, 10) for num_classes=10."`.
    """
    return f"Label {{}} is outside [0, {num_classes}) for {owner}." + (f" {hint}" if hint else "")


def check_labels(labels, num_classes, owner=None, hint=""):
    """Raises a `ValueError` naming the first label outside `[0, num_classes)`.

    Args:
        labels: array-like of class ids.
        num_classes: int. The class count.
        owner: str or None. As in `out_of_range_template`; None:
            `"num_classes={num_classes}"`.
        hint: str. As in `out_of_range_template`.

    Raises:
        ValueError: a label < 0 or >= `num_classes`.
    """
    labels = np.asarray(labels).reshape(-1)
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if bad.size:
        owner = owner or f"num_classes={num_classes}"
        raise ValueError(out_of_range_template(num_classes, owner, hint).format(bad[0]))


def assert_labels(labels, num_classes, owner=None, hint="", ignore_class=None):
    """`labels`, to be computed only after a graph assertion on their range.

    For TensorFlow graphs: a tf.data map or a `tf.function`. The assertion
    fails with the message of `out_of_range_template`, naming the first label
    outside `[0, num_classes)` (`ignore_class`, when given, is allowed). Under
    XLA (`jit_compile=True`) no op can raise, so the labels pass unchecked.

    Args:
        labels: tensor of class ids (integer or float).
        num_classes: int. The class count.
        owner, hint: as in `check_labels`.
        ignore_class: int or None. A label value that is always valid.

    Returns:
        `labels`, with a control dependency on the assertion.

    Raises:
        tf.errors.InvalidArgumentError: when the graph runs, for a label out
            of range.
    """
    import tensorflow as tf
    from tensorflow.python.ops import control_flow_util

    if control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()):
        return labels  # XLA compiles Assert ops away and has no string ops.
    flat = tf.reshape(labels, [-1])
    valid = (flat >= 0) & (flat < num_classes)
    if ignore_class is not None:
        valid |= tf.equal(flat, tf.cast(ignore_class, flat.dtype))
    template = out_of_range_template(num_classes, owner or f"num_classes={num_classes}", hint)

    def fail():  # Only run when a label is out of range.
        first_bad = tf.boolean_mask(flat, ~valid)[0]
        return tf.debugging.Assert(False, [tf.strings.format(template, first_bad)])

    check = tf.cond(tf.reduce_all(valid), tf.no_op, fail)
    with tf.control_dependencies([check]):
        return tf.identity(labels)
