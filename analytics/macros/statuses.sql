{# Orders that passed checkout count as revenue; carts and cancelled orders do not. #}
{% macro sold_statuses() -%}
    ('processing', 'paid', 'completed')
{%- endmacro %}

{# Every order status of the API, in funnel order. #}
{% macro funnel_statuses() -%}
    {{ return(['shopping_cart', 'editable', 'processing', 'paid', 'completed', 'cancelled']) }}
{%- endmacro %}
