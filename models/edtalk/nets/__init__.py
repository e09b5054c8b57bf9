"""EDTalk's networks in torch (encoder, decoder, generator, Audio2Lip), their checkpoint
loading and their export to ONNX: training-time and export-time code only.

Everything that imports torch in :mod:`models.edtalk` lives here, so "no torch at serve
time" is a folder rule (a test checks it); serving runs the exported graphs
(:mod:`models.edtalk.runtime`).
"""
