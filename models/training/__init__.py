"""Training for audio-to-motion (torch only; never imported by the serving path).

Data synthesis with phone timings (flite, festival, espeak-ng), viseme -> ARKit targets,
augmentation, the network, the training loop and ONNX export.
"""
