"""``python -m fcnjax.zoo``: the FCN reference's published caffemodels (see fcnjax.weights.zoo)."""

from fcnjax.weights.zoo import main

if __name__ == "__main__":
    main()
