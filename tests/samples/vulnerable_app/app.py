"""A deliberately vulnerable sample: the live bandit test scans it. Never run or import it."""

import hashlib
import pickle
import subprocess

import yaml

DATABASE_PASSWORD = "hunter2"


def run(command):
    return subprocess.call(command, shell=True)


def load_session(blob):
    return pickle.loads(blob)


def load_config(text):
    return yaml.load(text)


def fingerprint(data):
    return hashlib.md5(data).hexdigest()


def calculate(expression):
    return eval(expression)


def serve(app):
    app.run(host="0.0.0.0", debug=True)
