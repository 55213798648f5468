"""Router-R1 protocol tag strings."""

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
SEARCH_OPEN = "<search>"
SEARCH_CLOSE = "</search>"
INFORMATION_OPEN = "<information>"
INFORMATION_CLOSE = "</information>"
ANSWER_OPEN = "<answer>"
ANSWER_CLOSE = "</answer>"

ALL_TAGS: tuple[str, ...] = (
    SEARCH_OPEN,
    SEARCH_CLOSE,
    THINK_OPEN,
    THINK_CLOSE,
    ANSWER_OPEN,
    ANSWER_CLOSE,
    INFORMATION_OPEN,
    INFORMATION_CLOSE,
)

TAG_NAMES: tuple[str, ...] = ("think", "search", "information", "answer")
