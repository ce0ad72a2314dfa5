"""GANs: a generator G (z -> w -> image) and a discriminator D (image -> real/fake logit),
audited by the ``gan`` task (latent- and pixel-space attacks on D, image quality) and
hardened by discriminator adversarial training (``d-at``)."""
