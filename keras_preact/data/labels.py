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


def out_of_range_template(num_classes, owner=None, hint=""):
    """The message for a label outside `[0, num_classes)`, `{}` standing for the label.

    Args:
        num_classes: int. The class count.
        owner: str or None. What the count belongs to, e.g. `"a model with 10
            classes"`; None: `"num_classes={num_classes}"`.
        hint: str. A sentence to append (e.g. `MODEL_GARDEN_HINT`), or `""`.

    Returns:
        str for `str.format` and `tf.strings.format`, e.g.
        `"Label {} is outside [0, 10) for num_classes=10."`.
    """
    owner = owner or f"num_classes={num_classes}"
    return f"Label {{}} is outside [0, {num_classes}) for {owner}." + (f" {hint}" if hint else "")


def check_labels(labels, num_classes, owner=None, hint=""):
    """Raises a `ValueError` naming the first label outside `[0, num_classes)`.

    Args:
        labels: array-like of class ids.
        num_classes, owner, hint: as in `out_of_range_template`.

    Raises:
        ValueError: a label < 0 or >= `num_classes`.
    """
    labels = np.asarray(labels).reshape(-1)
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if bad.size:
        raise ValueError(out_of_range_template(num_classes, owner, hint).format(bad[0]))


def assert_labels(labels, num_classes, owner=None, hint="", ignore_class=None):
    """`labels`, to be computed only after a graph assertion on their range.

    For TensorFlow graphs: a tf.data map or a `tf.function`. The assertion
    fails with the message of `out_of_range_template`, naming the first label
    outside `[0, num_classes)` (`ignore_class`, when given, is allowed). Under
    XLA (`jit_compile=True`) no op can raise, so the labels pass unchecked.

    Args:
        labels: tensor of class ids (integer or float).
        num_classes, owner, hint: as in `out_of_range_template`.
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
    flat = tf.cast(tf.reshape(labels, [-1]), tf.int64)  # As the cross-entropy reads them.
    valid = (flat >= 0) & (flat < num_classes)
    if ignore_class is not None:
        valid |= tf.equal(flat, ignore_class)
    template = out_of_range_template(num_classes, owner, hint)

    def fail():  # Only run when a label is out of range.
        first_bad = tf.boolean_mask(flat, ~valid)[0]
        return tf.debugging.Assert(False, [tf.strings.format(template, first_bad)])

    check = tf.cond(tf.reduce_all(valid), tf.no_op, fail)
    with tf.control_dependencies([check]):
        return tf.identity(labels)
