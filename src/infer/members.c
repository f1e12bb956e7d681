/* Read access to a model's members (pn_model_member), for exporters. */
#include "infer/internal.h"

int pn_model_member_count(const pn_model *m) { return m->n_members; }

const pn_net *pn_model_member_net(const pn_model *m, int i) { return m->members[i].net; }

float pn_model_member_temperature(const pn_model *m, int i) { return m->members[i].temperature; }

int pn_model_member_clahe(const pn_model *m, int i) { return m->members[i].clahe; }
