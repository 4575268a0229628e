/* The mask registry: one line per mask. Each line names the mask (its header
 * masks/<name>.h defines chill_<name>_*), how many integer arguments it takes,
 * and their names in order. Included with CHILL_MASK defined as needed (the
 * enum in mask.h, the name table in registry.c, kernel dispatch). */
CHILL_MASK(full,           0, "")
CHILL_MASK(causal,         0, "")
CHILL_MASK(sliding_window, 2, "left_context", "right_context")
CHILL_MASK(chunkwise,      2, "context_size", "back_contexts")
CHILL_MASK(prefix_lm,      1, "prefix_size")
