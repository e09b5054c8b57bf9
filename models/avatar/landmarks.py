"""Index groups of the 478-point face mesh (MediaPipe Face Mesh topology, refined).

Left/right are the subject's own: the subject's left eye appears on the image's right.
"""

from __future__ import annotations

NUM_LANDMARKS = 478

LIPS_OUTER = (
    61,
    185,
    40,
    39,
    37,
    0,
    267,
    269,
    270,
    409,
    291,
    375,
    321,
    405,
    314,
    17,
    84,
    181,
    91,
    146,
)
# Inner lip ring, clockwise in the image starting at the right (image-left) corner.
LIPS_INNER = (
    78,
    191,
    80,
    81,
    82,
    13,
    312,
    311,
    310,
    415,
    308,
    324,
    318,
    402,
    317,
    14,
    87,
    178,
    88,
    95,
)
LIPS_INNER_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIPS_INNER_LOWER = (308, 324, 318, 402, 317, 14, 87, 178, 88, 95, 78)
LIPS_OUTER_UPPER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LIPS_OUTER_LOWER = (291, 375, 321, 405, 314, 17, 84, 181, 91, 146, 61)
MOUTH_CORNER_R, MOUTH_CORNER_L = 61, 291  # outer corners (image left, image right)
INNER_CORNER_R, INNER_CORNER_L = 78, 308
UPPER_INNER_MID, LOWER_INNER_MID = 13, 14
UPPER_OUTER_MID, LOWER_OUTER_MID = 0, 17

FACE_OVAL = (
    10,
    338,
    297,
    332,
    284,
    251,
    389,
    356,
    454,
    323,
    361,
    288,
    397,
    365,
    379,
    378,
    400,
    377,
    152,
    148,
    176,
    149,
    150,
    136,
    172,
    58,
    132,
    93,
    234,
    127,
    162,
    21,
    54,
    103,
    67,
    109,
)
FOREHEAD_TOP, CHIN = 10, 152
CHEEK_R, CHEEK_L = 234, 454
NOSE_TIP = 1
NOSE_BOTTOM = 2

EYE_R_UPPER = (246, 161, 160, 159, 158, 157, 173)
EYE_R_LOWER = (7, 163, 144, 145, 153, 154, 155)
EYE_R_CORNERS = (33, 133)  # outer, inner
EYE_L_UPPER = (466, 388, 387, 386, 385, 384, 398)
EYE_L_LOWER = (249, 390, 373, 374, 380, 381, 382)
EYE_L_CORNERS = (263, 362)
# The ring of landmarks just above the upper lid (lid crease), moved part-way in a blink.
EYE_R_UPPER_OUTER = (247, 30, 29, 27, 28, 56, 190)
EYE_L_UPPER_OUTER = (467, 260, 259, 257, 258, 286, 414)
EYE_R_LOWER_OUTER = (25, 110, 24, 23, 22, 26, 112)
EYE_L_LOWER_OUTER = (255, 339, 254, 253, 252, 256, 341)
IRIS_R = (468, 469, 470, 471, 472)
IRIS_L = (473, 474, 475, 476, 477)

BROW_R = (70, 63, 105, 66, 107, 46, 53, 52, 65, 55)
BROW_L = (300, 293, 334, 296, 336, 276, 283, 282, 295, 285)
BROW_R_INNER, BROW_L_INNER = (107, 66, 55, 65), (336, 296, 285, 295)
BROW_R_OUTER, BROW_L_OUTER = (70, 63, 46, 53), (300, 293, 276, 283)
