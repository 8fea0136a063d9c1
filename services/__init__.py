"""The three services of the product: management, hiring and bonus."""
