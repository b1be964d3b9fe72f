"""4-bit quantized VGG16 and the bit-exact reference of an 8x8 systolic array."""
