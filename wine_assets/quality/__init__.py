"""Wine quality: training data, the model and its champion, the daily barrel history."""

#: The asset group and the registry name of the wine quality model.
GROUP = "wine_quality"
MODEL_NAME = "wine_quality"
