package kube

import (
	"context"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
)

// DefaultUserAgent is sent when the rest.Config names none.
const DefaultUserAgent = "detour"

// Client reaches one apiserver. It is safe for concurrent use.
type Client struct {
	core      rest.Interface // /api/v1
	admission rest.Interface // /apis/admissionregistration.k8s.io/v1
}

// New makes a Client from cfg; it makes no request.
func New(cfg *rest.Config) (*Client, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, admissionregistrationv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, fmt.Errorf("building the API scheme: %w", err)
		}
	}
	codecs := serializer.NewCodecFactory(scheme).WithoutConversion()
	base := rest.CopyConfig(cfg)
	if base.UserAgent == "" {
		base.UserAgent = DefaultUserAgent
	}
	httpClient, err := rest.HTTPClientFor(base)
	if err != nil {
		return nil, fmt.Errorf("building the HTTP client for %s: %w", cfg.Host, err)
	}
	restFor := func(apiPath string, gv *schema.GroupVersion) (rest.Interface, error) {
		c := rest.CopyConfig(base)
		c.APIPath = apiPath
		c.GroupVersion = gv
		c.ContentType = runtime.ContentTypeJSON
		c.AcceptContentTypes = runtime.ContentTypeJSON
		c.NegotiatedSerializer = codecs
		rc, err := rest.RESTClientForConfigAndClient(c, httpClient)
		if err != nil {
			return nil, fmt.Errorf("building the API client for %s%s/%s: %w", cfg.Host, apiPath, gv, err)
		}
		return rc, nil
	}
	c := &Client{}
	if c.core, err = restFor("/api", &corev1.SchemeGroupVersion); err != nil {
		return nil, err
	}
	if c.admission, err = restFor("/apis", &admissionregistrationv1.SchemeGroupVersion); err != nil {
		return nil, err
	}
	return c, nil
}

// Core is the REST client of the core/v1 API group, for what the methods below do not
// cover (a cache.ListWatch, say). It decodes only the types named in the package doc.
func (c *Client) Core() rest.Interface { return c.core }

// GetSecret reads the Secret namespace/name.
func (c *Client) GetSecret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	out := &corev1.Secret{}
	err := c.core.Get().Namespace(namespace).Resource("secrets").Name(name).
		VersionedParams(&metav1.GetOptions{}, metav1.ParameterCodec).Do(ctx).Into(out)
	return out, err
}

// CreateSecret creates s in its namespace, naming fieldManager as its writer.
func (c *Client) CreateSecret(ctx context.Context, s *corev1.Secret, fieldManager string) (*corev1.Secret, error) {
	out := &corev1.Secret{}
	err := c.core.Post().Namespace(s.Namespace).Resource("secrets").
		VersionedParams(&metav1.CreateOptions{FieldManager: fieldManager}, metav1.ParameterCodec).
		Body(s).Do(ctx).Into(out)
	return out, err
}

// UpdateSecret replaces s; the apiserver refuses it with a Conflict when s.ResourceVersion
// is no longer the current one.
func (c *Client) UpdateSecret(ctx context.Context, s *corev1.Secret, fieldManager string) (*corev1.Secret, error) {
	out := &corev1.Secret{}
	err := c.core.Put().Namespace(s.Namespace).Resource("secrets").Name(s.Name).
		VersionedParams(&metav1.UpdateOptions{FieldManager: fieldManager}, metav1.ParameterCodec).
		Body(s).Do(ctx).Into(out)
	return out, err
}

// ListPods lists one page of the Pods in namespace (metav1.NamespaceAll: every namespace).
func (c *Client) ListPods(ctx context.Context, namespace string, opts metav1.ListOptions) (*corev1.PodList, error) {
	out := &corev1.PodList{}
	err := c.core.Get().Namespace(namespace).Resource("pods").
		VersionedParams(&opts, metav1.ParameterCodec).Do(ctx).Into(out)
	return out, err
}

// CreateEvent creates ev in its namespace.
func (c *Client) CreateEvent(ctx context.Context, ev *corev1.Event) (*corev1.Event, error) {
	out := &corev1.Event{}
	err := c.core.Post().Namespace(ev.Namespace).Resource("events").
		VersionedParams(&metav1.CreateOptions{}, metav1.ParameterCodec).
		Body(ev).Do(ctx).Into(out)
	return out, err
}

// GetMutatingWebhookConfiguration reads the cluster-scoped configuration name.
func (c *Client) GetMutatingWebhookConfiguration(ctx context.Context, name string) (*admissionregistrationv1.MutatingWebhookConfiguration, error) {
	out := &admissionregistrationv1.MutatingWebhookConfiguration{}
	err := c.admission.Get().Resource("mutatingwebhookconfigurations").Name(name).
		VersionedParams(&metav1.GetOptions{}, metav1.ParameterCodec).Do(ctx).Into(out)
	return out, err
}

// PatchMutatingWebhookConfiguration applies a patch of type pt to the configuration name.
func (c *Client) PatchMutatingWebhookConfiguration(ctx context.Context, name string, pt types.PatchType, patch []byte, fieldManager string) (*admissionregistrationv1.MutatingWebhookConfiguration, error) {
	out := &admissionregistrationv1.MutatingWebhookConfiguration{}
	err := c.admission.Patch(pt).Resource("mutatingwebhookconfigurations").Name(name).
		VersionedParams(&metav1.PatchOptions{FieldManager: fieldManager}, metav1.ParameterCodec).
		Body(patch).Do(ctx).Into(out)
	return out, err
}
