"""What teachers see of group work: attribution, history, the class console."""
