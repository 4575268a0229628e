/* The mask registry: one line per mask. Each line names the mask (its header
 * masks/<name>.h defines chill_<name>_*), how many integer arguments it takes,
 * their names in order, and the smallest value each accepts (the largest is
 * CHILL_MASK_ARG_MAX for all). Included with CHILL_MASK defined as needed: the
 * enum in mask.h, the table in registry.c, kernel dispatch. */
CHILL_MASK(full,           0, (""),                               (0))
CHILL_MASK(causal,         0, (""),                               (0))
CHILL_MASK(sliding_window, 2, ("left_context", "right_context"), (0, 0))
CHILL_MASK(chunkwise,      2, ("context_size", "back_contexts"), (1, 0))
CHILL_MASK(prefix_lm,      1, ("prefix_size"),                    (0))
