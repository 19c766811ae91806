package main

import (
	"fmt"
	"regexp"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// The pattern the Prometheus Operator's CRDs put on a duration: the Go type is a plain
// string, so strict decoding alone lets `30 s` or `5min` through to a rejected apply.
var promDuration = regexp.MustCompile(
	`^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$`)

func (c *checker) monitoring() {
	for _, o := range c.objects {
		switch v := o.value.(type) {
		case *monitoringv1.PodMonitor:
			c.podMonitor(o, v)
		case *monitoringv1.PrometheusRule:
			c.prometheusRule(o, v)
		}
	}
}

// podMonitor: it must select pods of the kustomization, on a port they declare, at the path
// cdc serves its metrics on.
func (c *checker) podMonitor(o object, monitor *monitoringv1.PodMonitor) {
	selector, problem := selectorOf(&monitor.Spec.Selector)
	if problem != "" {
		c.report(o, "spec.selector %s", problem)
		return
	}
	// Without a namespaceSelector it selects in its own namespace.
	anyNamespace := monitor.Spec.NamespaceSelector.Any || len(monitor.Spec.NamespaceSelector.MatchNames) > 0
	var selected []object
	for _, candidate := range c.objects {
		d, ok := candidate.value.(*appsv1.Deployment)
		if ok && (anyNamespace || candidate.namespace == o.namespace) &&
			selector.Matches(labels.Set(d.Spec.Template.Labels)) {
			selected = append(selected, candidate)
		}
	}
	if len(selected) == 0 {
		c.report(o, "spec.selector (%s) selects the pods of no Deployment here", selector)
	}
	for i, endpoint := range monitor.Spec.PodMetricsEndpoints {
		at := fmt.Sprintf("spec.podMetricsEndpoints[%d]", i)
		if endpoint.Port == nil && endpoint.PortNumber == nil {
			c.report(o, "%s names no port or portNumber", at)
		}
		for _, duration := range []monitoringv1.Duration{endpoint.Interval, endpoint.ScrapeTimeout} {
			if !promDuration.MatchString(string(duration)) {
				c.report(o, "%s: %q is not a Prometheus duration (like 30s, 1m)", at, duration)
			}
		}
		for _, target := range selected {
			d := target.value.(*appsv1.Deployment)
			declared := false
			runsCdc := false
			for _, container := range d.Spec.Template.Spec.Containers {
				if _, ok := cdcRunConfig(container); ok {
					runsCdc = true
				}
				for _, port := range container.Ports {
					declared = declared ||
						(endpoint.Port != nil && port.Name == *endpoint.Port) ||
						(endpoint.PortNumber != nil && port.ContainerPort == *endpoint.PortNumber)
				}
			}
			if (endpoint.Port != nil || endpoint.PortNumber != nil) && !declared {
				c.report(o, "%s: the pods of %s declare no such port", at, target)
			}
			if runsCdc && endpoint.Path != "" && endpoint.Path != metricsPath {
				c.report(o, "%s.path is %q: cdc serves its metrics on %s", at, endpoint.Path,
					metricsPath)
			}
		}
	}
}

// prometheusRule: what the operator's admission webhook (when it is installed) rejects.
func (c *checker) prometheusRule(o object, rule *monitoringv1.PrometheusRule) {
	groups := map[string]bool{}
	for i, group := range rule.Spec.Groups {
		at := fmt.Sprintf("spec.groups[%d] (%s)", i, group.Name)
		if group.Name == "" || groups[group.Name] {
			c.report(o, "%s: the name is empty or taken by another group", at)
		}
		groups[group.Name] = true
		for j, r := range group.Rules {
			at := fmt.Sprintf("%s.rules[%d] (%s%s)", at, j, r.Alert, r.Record)
			if (r.Alert == "") == (r.Record == "") {
				c.report(o, "%s: a rule has either alert or record", at)
			}
			if strings.TrimSpace(r.Expr.String()) == "" {
				c.report(o, "%s: expr is empty", at)
			}
			if r.For != nil && !promDuration.MatchString(string(*r.For)) {
				c.report(o, "%s: for %q is not a Prometheus duration (like 10m)", at, *r.For)
			}
		}
	}
}
